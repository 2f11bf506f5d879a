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
    came. The check costs well under a microsecond; the message is built only for an array that fails."""
    if (
        isinstance(array, np.ndarray)
        and array.dtype == dtype
        and array.ndim == ndim
        and (length is None or array.shape[0] == length)
        and (width is None or ndim != 2 or array.shape[1] == width)
        and array.flags.c_contiguous
    ):
        return array
    raise ValueError(_refusal(name, array, np.dtype(dtype), ndim, length, width))


def _refusal(
    name: str, array: object, expected: np.dtype[np.generic], ndim: int, length: int | None, width: int | None
) -> str:
    parts = [str(length) if length is not None else "rows"]
    if ndim == 2:
        parts.append(str(width) if width is not None else "columns")
    shape = "(" + ", ".join(parts) + ("," if ndim == 1 else "") + ")"
    wanted = f"{name}: expected a C-contiguous {expected} array of shape {shape}"
    if not isinstance(array, np.ndarray):
        return f"{wanted}, got {type(array).__name__}"
    if array.dtype != expected or array.ndim != ndim:
        return f"{wanted}, got {array.dtype} of shape {array.shape}"
    if (length is not None and array.shape[0] != length) or (
        ndim == 2 and width is not None and array.shape[1] != width
    ):
        return f"{wanted}, got shape {array.shape}"
    return f"{wanted}, got a strided view (np.ascontiguousarray copies it)"
