"""Validation at the public entries: every message names the argument, what was expected and what came."""

from __future__ import annotations

import numpy as np


def as_float_array(name: str, value, ndim: int | None = None, shape: tuple | None = None) -> np.ndarray:
    """`value` as a float64 NumPy array with finite entries and the expected rank / shape.

    `shape` may hold None for a free axis. Raises ValueError naming `name` otherwise.
    """
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a numeric array; got {type(value).__name__} ({err})") from None
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions; got shape {arr.shape}")
    if shape is not None:
        if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
            want = "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{name} must have shape {want}; got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} NaN or infinite entries")
    return arr


def as_labels(name: str, y, n: int) -> np.ndarray:
    """Labels as a finite float64 vector of length n."""
    y = as_float_array(name, y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be a vector of shape ({n},); got shape {y.shape}")
    if y.shape[0] != n:
        raise ValueError(f"{name} has {y.shape[0]} entries but there are {n} examples")
    return y
