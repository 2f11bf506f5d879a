"""Checks at the door of every Numba kernel: a kernel given the wrong shape or dtype either fails deep
inside compiled code with a message about types, or quietly compiles a second specialisation and computes
on a copy. The public wrapper checks once and says what it expected."""

from __future__ import annotations

import numpy as np


def require(
    name: str,
    array: object,
    dtype: type[np.generic] | np.dtype[np.generic],
    ndim: int,
    length: int | None = None,
    width: int | None = None,
) -> np.ndarray:
    """`array` itself when it is a C-contiguous `ndim`-dimensional `dtype` array (of `length` rows and,
    for 2-d, `width` columns when given); otherwise a ValueError naming `name`, what was expected and what
    came."""
    expected = np.dtype(dtype)
    shape = "(rows,)" if ndim == 1 else "(rows, columns)"
    if length is not None or width is not None:
        parts = [str(length) if length is not None else "rows"]
        if ndim == 2:
            parts.append(str(width) if width is not None else "columns")
        shape = "(" + ", ".join(parts) + ("," if ndim == 1 else "") + ")"
    wanted = f"a C-contiguous {expected} array of shape {shape}"
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{name}: expected {wanted}, got {type(array).__name__}")
    if array.dtype != expected or array.ndim != ndim:
        raise ValueError(f"{name}: expected {wanted}, got {array.dtype} of shape {array.shape}")
    if (length is not None and array.shape[0] != length) or (
        ndim == 2 and width is not None and array.shape[1] != width
    ):
        raise ValueError(f"{name}: expected {wanted}, got shape {array.shape}")
    if not array.flags.c_contiguous:
        raise ValueError(f"{name}: expected {wanted}, got a strided view (np.ascontiguousarray copies it)")
    return array
