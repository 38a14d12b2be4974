"""Validation at the public entries: every message names the argument, what was expected and what came.

Input dtypes: any real numeric array (bool, int, float16/32/64) is converted to float64 and the theory runs in
float64 on those values; the conversion is exact, so nothing is lost by accepting it. Complex arrays are
refused (NumPy would silently drop the imaginary part), as are strings and other non-numeric input.
"""

from __future__ import annotations

import numpy as np


def as_float_array(name: str, value, ndim: int | None = None, shape: tuple | None = None) -> np.ndarray:
    """`value` as a float64 NumPy array with finite entries and the expected rank / shape.

    `shape` may hold None for a free axis. Raises ValueError naming `name` otherwise.
    """
    if np.iscomplexobj(value):
        raise ValueError(f"{name} must be real; got a complex array")
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
    """Targets as a finite float64 vector of length n.

    Any real targets are accepted: the likelihood is Gaussian (spec A.7), so the theory and the samplers are
    exact for regression targets, and +-1 class labels are only the paper's choice. The classification metrics
    need +-1 labels and check them with `as_class_labels`.
    """
    y = as_float_array(name, y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be a vector of shape ({n},); got shape {y.shape}")
    if y.shape[0] != n:
        raise ValueError(f"{name} has {y.shape[0]} entries but there are {n} examples")
    return y


def as_class_labels(name: str, y, n: int) -> np.ndarray:
    """Class labels: a vector of length n with every entry -1 or +1 (sign accuracy is meaningless otherwise,
    e.g. for 0/1 labels, where sign(mean) == 0 never happens)."""
    y = as_labels(name, y, n)
    wrong = np.flatnonzero(np.abs(y) != 1.0)
    if wrong.size:
        raise ValueError(f"{name} must hold class labels -1 or +1; got {float(y[wrong[0]])!r} at index {wrong[0]} "
                         f"({wrong.size} entries are not +-1)")
    return y


def check_sampling_temperature(spec) -> None:
    """Posterior sampling needs T > 0 (at T = 0 the likelihood is a constraint, not a density)."""
    if not spec.temperature > 0:
        raise ValueError(f"sampling needs T > 0; got spec.temperature = {spec.temperature}")


def as_count(name: str, value, minimum: int = 1) -> int:
    """A Python int >= minimum (bools and floats are refused, so 2.5 or True never pass as a count)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}")
    return int(value)
