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
    if np.ndim(value) == 0:
        value = [value] * length
    value = tuple(float(v) for v in np.asarray(value, dtype=np.float64).ravel())
    if len(value) != length:
        raise ValueError(f"{name} must be a number or a sequence of length {length}; got length {len(value)}")
    if not all(math.isfinite(v) and v > 0 for v in value):
        raise ValueError(f"{name} must be finite and > 0; got {value}")
    return value


@dataclass(frozen=True)
class NetworkSpec:
    """A deep multi-head linear-value attention network (spec A) and its Bayesian prior.

    Args:
      heads: (H_1, ..., H_L), heads per attention layer, L >= 1. The number of attention paths is prod(H_l).
      widths: a number (the same N everywhere) or (N_1, ..., N_L, N_a): the input width of each attention
        layer and of the readout (spec A.7, the code's `model_widths`).
      variances: a number or (s_0, s_1, ..., s_L, s_a): prior variances of the input projection, each
        attention layer's values and the readout. Default 1.
      temperature: T >= 0, variance of the Gaussian likelihood. T = 0 needs a non-singular kernel.
      readout: token readout of the last layer along the query index: 'mean' (average pooling),
        'first' or 'last' (spec A.5). The code's names 'average_pooling', 'first_token', 'last_token' work.
    """

    heads: tuple[int, ...]
    widths: tuple[float, ...] = 100.0
    variances: tuple[float, ...] = 1.0
    temperature: float = 0.01
    readout: str = "mean"

    def __post_init__(self):
        heads = self.heads
        if isinstance(heads, (int, np.integer)):
            heads = (heads,)
        try:
            heads = tuple(int(h) for h in heads)
        except (TypeError, ValueError):
            raise ValueError(f"heads must be a sequence of positive ints (H_1, ..., H_L); got {self.heads!r}")
        if len(heads) < 1 or any(h < 1 for h in heads) or any(h != hh for h, hh in zip(heads, self.heads)):
            raise ValueError(f"heads must be a non-empty sequence of positive ints; got {self.heads!r}")
        L = len(heads)
        object.__setattr__(self, "heads", heads)
        object.__setattr__(self, "widths", _as_tuple("widths", self.widths, L + 1))
        object.__setattr__(self, "variances", _as_tuple("variances", self.variances, L + 2))
        T = float(self.temperature)
        if not math.isfinite(T) or T < 0:
            raise ValueError(f"temperature must be finite and >= 0; got {self.temperature}")
        object.__setattr__(self, "temperature", T)
        if self.readout not in _READOUT_ALIASES:
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
