"""The logistic function, as every CTR kernel, calibration and report computes it: clipped at +-35, where
exp would overflow a float and the probability is 0 or 1 to double precision anyway."""

from __future__ import annotations

import numba as nb
import numpy as np

CLIP = 35.0


@nb.njit(cache=True, inline="always")
def sigmoid(z: float) -> float:
    """For Numba kernels, one value."""
    z = min(max(z, -CLIP), CLIP)
    return 1.0 / (1.0 + np.exp(-z))


def sigmoid_array(z: np.ndarray) -> np.ndarray:
    """For NumPy code, element-wise."""
    return 1.0 / (1.0 + np.exp(-np.clip(z, -CLIP, CLIP)))
