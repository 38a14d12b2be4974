"""The network description: architecture (static) and priors / temperature (runtime).

Spec section A. The Bayesian network is

    x^(0)_t = V^(0) x_t / sqrt(N0)                                      (A.2)
    x^(l)_t = (H_l N_l)^-1/2 sum_h V^(l,h) sum_s x^(l-1)_s Omega^(l,h)_st (A.4)
    f(x)    = a . x^(L) / sqrt(N_a)                                     (A.6)

with Gaussian priors V^(0) ~ N(0, s0), V^(l,h) ~ N(0, s_l), a ~ N(0, s_a) (A.7) and a Gaussian likelihood
of variance T. `heads` and `readout` fix the shapes of everything and are static under `jax.jit`; the widths,
variances and temperature enter the theory as arrays (`NetworkSpec.hyper`) so sweeping them never recompiles.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import jax.numpy as jnp
import numpy as np

READOUTS = ("mean", "first", "last")
_READOUT_ALIASES = {
    "mean": "mean",
    "average_pooling": "mean",
    "first": "first",
    "first_token": "first",
    "last": "last",
    "last_token": "last",
}


class Hyper(NamedTuple):
    """Runtime (traced) numbers of a network: jit sees arrays, so changing them does not recompile.

    widths: (L+1,) float64, (N_1, ..., N_L, N_a): input width of every attention layer, then the readout's.
    variances: (L+2,) float64, (s_0, s_1, ..., s_L, s_a): prior variances of V^(0), V^(l), a.
    temperature: () float64, T, the likelihood variance.
    """

    widths: jnp.ndarray
    variances: jnp.ndarray
    temperature: jnp.ndarray


def _as_tuple(name: str, value, length: int) -> tuple[float, ...]:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or a sequence of {length} numbers; got {value!r}") from None
    value = tuple(float(v) for v in (np.full(length, arr) if arr.ndim == 0 else arr.ravel()))
    if len(value) != length:
        raise ValueError(f"{name} must be a number or a sequence of length {length}; got length {len(value)}")
    if not all(math.isfinite(v) and v > 0 for v in value):
        hint = (" (the infinite-width limit is the GP limit: use gp_order(spec), or predict without U1)"
                if name == "widths" and any(v == math.inf for v in value) else "")
        raise ValueError(f"{name} must be finite and > 0; got {value}{hint}")
    return value


def check_heads(value) -> tuple[int, ...]:
    """heads as (H_1, ..., H_L), positive ints; an int H is one layer. ValueError naming `heads` otherwise."""
    heads = (value,) if np.ndim(value) == 0 else value
    try:
        ints = tuple(int(h) for h in heads)
        exact = all(float(h) == i for h, i in zip(heads, ints))
    except (TypeError, ValueError):
        ints, exact = (), False
    if not exact or len(ints) < 1 or any(h < 1 for h in ints) or any(isinstance(h, bool) for h in heads):
        raise ValueError(f"heads must be a positive int or a non-empty sequence of positive ints (H_1, ..., H_L); "
                         f"got {value!r}")
    return ints


@dataclass(frozen=True)
class NetworkSpec:
    """A deep multi-head linear-value attention network (spec A) and its Bayesian prior.

    Args:
      heads: (H_1, ..., H_L), heads per attention layer, L >= 1; an int H means one layer, (H,). The number
        of attention paths is prod(H_l).
      widths: a number (the same N everywhere) or (N_1, ..., N_L, N_a): the input width of each attention
        layer and of the readout (spec A.7, the code's `model_widths`). Finite and > 0; N = inf is the GP
        limit, reached with `gp_order(spec)` instead.
      variances: a number or (s_0, s_1, ..., s_L, s_a): prior variances of the input projection, each
        attention layer's values and the readout. Default 1.
      temperature: T >= 0, variance of the Gaussian likelihood. T = 0 needs a non-singular kernel.
      readout: token readout of the last layer along the query index: 'mean' (average pooling),
        'first' or 'last' (spec A.5). The code's names 'average_pooling', 'first_token', 'last_token' work.
    """

    heads: tuple[int, ...] | int
    widths: tuple[float, ...] = 100.0
    variances: tuple[float, ...] = 1.0
    temperature: float = 0.01
    readout: str = "mean"

    def __post_init__(self):
        heads = check_heads(self.heads)
        L = len(heads)
        object.__setattr__(self, "heads", heads)
        object.__setattr__(self, "widths", _as_tuple("widths", self.widths, L + 1))
        object.__setattr__(self, "variances", _as_tuple("variances", self.variances, L + 2))
        try:
            T = float(self.temperature)
        except (TypeError, ValueError):
            T = math.nan
        if not math.isfinite(T) or T < 0:
            raise ValueError(f"temperature must be a finite number >= 0; got {self.temperature!r}")
        object.__setattr__(self, "temperature", T)
        if not isinstance(self.readout, str) or self.readout not in _READOUT_ALIASES:
            raise ValueError(f"readout must be one of {READOUTS} (or average_pooling, first_token, last_token); "
                             f"got {self.readout!r}")
        object.__setattr__(self, "readout", _READOUT_ALIASES[self.readout])

    @property
    def n_layers(self) -> int:
        return len(self.heads)

    @property
    def n_paths(self) -> int:
        return int(np.prod(self.heads))

    @property
    def level_sizes(self) -> tuple[int, ...]:
        """Sizes of the order parameters U_1, ..., U_L: n_l = H_l H_{l+1} ... H_L (spec B.3)."""
        return tuple(int(np.prod(self.heads[l:])) for l in range(self.n_layers))

    @property
    def structure(self) -> tuple:
        """The hashable, static part (what jit specialises on)."""
        return (self.heads, self.readout)

    def hyper(self) -> Hyper:
        return Hyper(jnp.asarray(self.widths, dtype=jnp.float64),
                     jnp.asarray(self.variances, dtype=jnp.float64),
                     jnp.asarray(self.temperature, dtype=jnp.float64))

    def replace(self, **changes) -> "NetworkSpec":
        return dataclasses.replace(self, **changes)

    def with_width(self, n: float) -> "NetworkSpec":
        """The same network with every width equal to n."""
        return self.replace(widths=float(n))


def path_labels(heads: Sequence[int]) -> list[str]:
    """Labels "h1,h2,..." (1-based) of the attention paths in the library's order (lower layer outermost)."""
    grids = np.indices(tuple(heads)).reshape(len(heads), -1).T
    return [",".join(str(h + 1) for h in row) for row in grids]
