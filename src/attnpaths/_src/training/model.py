"""The gradient-descent-trained attention network of experiment 2 (spec E.2): shapes, weights, output.

    z^(0)   = V0 x                                                        V0: (N, N0), no 1/sqrt(N0)
    z^(l)_t = H_l^-1/2 sum_h V_l[h] sum_s z^(l-1)_s Omega^(l,h)_st(x)     V_l: (H_l, N, N), l = 1..L
    f(x)    = a . mean_t z^(L)_t                                          a: (N,)

with Omega^(l,h) the attention of `attnpaths.QKHeads(Q_l, K_l)` on the RAW input x at every layer
(Omega_st = softmax_s((K x_s) . (Q x_t) / sqrt(G)), Q_l, K_l: (H_l, G, N0)); the network calls that class, so its
attention is the theory's by construction. No residual, no LayerNorm, no MLP, no biases. This is the spec's
`DualHeadNoLearningInputConstrainedLinearViT` with F = H_l summed heads and d_model = N.

Initialisation as PyTorch's default `nn.Linear`: every weight ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = N0
for V0, Q, K and N for V_l and a. The weights are float64 by default; `Architecture.dtype = "float32"` trains in
single precision (the paper trained in mixed 16-bit precision); the theory always receives float64 copies.

The names say what they compute on the TRAINED network (`gd_output`, `gd_accuracy`), so they are not confused with
the Bayesian network's `attnpaths.forward` or the predictor's `attnpaths.accuracy`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from attnpaths._src.attention import QKHeads
from attnpaths._src.checks import as_float_array

DTYPES = ("float64", "float32")


def _positive_int(name: str, v) -> int:
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{name} must be a positive int; got {v!r}")
    return int(v)


@dataclass(frozen=True)
class Architecture:
    """Shapes of the network.

    input_width: N0, the token width of x (P, N0, T).
    heads: (H_1, ..., H_L), summed heads per attention layer.
    width: N, the hidden width (output of V0 and of every V_l).
    qk_dim: G, the query/key dimension.
    dtype: "float64" or "float32", the precision of the weights and of training.
    """

    input_width: int
    heads: tuple[int, ...] = (4, 4)
    width: int = 64
    qk_dim: int = 16
    dtype: str = "float64"

    def __post_init__(self):
        _positive_int("input_width", self.input_width)
        _positive_int("width", self.width)
        _positive_int("qk_dim", self.qk_dim)
        heads = (self.heads,) if isinstance(self.heads, (int, np.integer)) else self.heads
        try:
            heads = tuple(_positive_int("heads", h) for h in heads)
        except TypeError:
            raise ValueError(f"heads must be a sequence of positive ints; got {self.heads!r}") from None
        if not heads:
            raise ValueError("heads must hold at least one layer")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}; got {self.dtype!r}")
        object.__setattr__(self, "heads", heads)
        for name in ("input_width", "width", "qk_dim"):
            object.__setattr__(self, name, int(getattr(self, name)))

    @property
    def n_layers(self) -> int:
        return len(self.heads)

    def to_dict(self) -> dict:
        return {"input_width": self.input_width, "heads": list(self.heads), "width": self.width,
                "qk_dim": self.qk_dim, "dtype": self.dtype}


class Params(NamedTuple):
    """Weights of the network (a pytree).

    V0: (N, N0) input projection.
    Q, K: per layer (H_l, G, N0) query and key weights (act on the raw input x).
    V: per layer (H_l, N, N) value weights, V[l][h] maps z^(l-1) to head h's contribution.
    a: (N,) readout.
    """

    V0: jnp.ndarray
    Q: tuple
    K: tuple
    V: tuple
    a: jnp.ndarray


def architecture_of(params: Params) -> Architecture:
    """The architecture implied by the shapes and dtype of params (checks that they are consistent)."""
    if not isinstance(params, Params):
        raise ValueError(f"params must be a training.Params; got {type(params).__name__}")
    n, n0 = np.shape(params.V0)
    if not (len(params.Q) == len(params.K) == len(params.V)):
        raise ValueError(f"params has {len(params.Q)} Q, {len(params.K)} K and {len(params.V)} V layers")
    heads = []
    g = np.shape(params.Q[0])[1] if params.Q else 0
    for l, (q, k, v) in enumerate(zip(params.Q, params.K, params.V)):
        h = np.shape(q)[0]
        for name, arr, want in (("Q", q, (h, g, n0)), ("K", k, (h, g, n0)), ("V", v, (h, n, n))):
            if np.shape(arr) != want:
                raise ValueError(f"params.{name}[{l}] must have shape {want}; got {np.shape(arr)}")
        heads.append(h)
    if np.shape(params.a) != (n,):
        raise ValueError(f"params.a must have shape ({n},); got {np.shape(params.a)}")
    dtype = str(jnp.asarray(params.V0).dtype)
    return Architecture(int(n0), tuple(heads), int(n), int(g), dtype if dtype in DTYPES else "float64")


def init_params(arch: Architecture, seed: int = 0) -> Params:
    """PyTorch-default initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for every weight, in arch.dtype.

    The draws are made in float64 and rounded, so a float32 network starts from the float64 one's weights."""
    keys = iter(jax.random.split(jax.random.PRNGKey(seed), 3 * arch.n_layers + 2))

    def uniform(shape, fan_in):
        b = 1.0 / math.sqrt(fan_in)
        return jax.random.uniform(next(keys), shape, jnp.float64, -b, b).astype(arch.dtype)

    n, n0, g = arch.width, arch.input_width, arch.qk_dim
    V0 = uniform((n, n0), n0)
    Q = tuple(uniform((h, g, n0), n0) for h in arch.heads)
    K = tuple(uniform((h, g, n0), n0) for h in arch.heads)
    V = tuple(uniform((h, n, n), n) for h in arch.heads)
    return Params(V0, Q, K, V, uniform((n,), n))


@dataclass(frozen=True, eq=False)
class _TracedQKHeads(QKHeads):
    """`QKHeads` whose Q and K may be traced JAX arrays (inside jit / grad): the NumPy validation of the public
    constructor is skipped; the scores and the softmax are QKHeads' own."""

    def __post_init__(self):
        pass


def layer_heads(Q: jnp.ndarray, K: jnp.ndarray) -> QKHeads:
    """The attention heads of one layer, Q, K: (H_l, G, N0) (traceable)."""
    return _TracedQKHeads(Q, K)


def head_gates(params: Params, head_mask=None) -> tuple[tuple, tuple]:
    """Validated head mask -> (gates, scales): pruned heads gated to 0, sum rescaled by (H_l - dropped)^-1/2.

    head_mask: None, an (L, H) array or one 0/1 vector per layer (spec E.7).
    """
    heads = [np.shape(v)[0] for v in params.V]
    if head_mask is None:
        return (tuple(jnp.ones(h) for h in heads), tuple(1.0 / math.sqrt(h) for h in heads))
    rows = list(np.asarray(head_mask)) if isinstance(head_mask, (np.ndarray, jnp.ndarray)) else \
        [np.asarray(r) for r in head_mask]
    if len(rows) != len(heads):
        raise ValueError(f"head_mask must have one row per layer, (L, H) = ({len(heads)}, {max(heads)}); "
                         f"got {len(rows)} rows")
    gates, scales = [], []
    for l, (row, h) in enumerate(zip(rows, heads)):
        row = np.asarray(row, dtype=np.float64)
        if row.shape != (h,):
            raise ValueError(f"head_mask[{l}] must have shape ({h},) = (H_{l + 1},); got {row.shape}")
        if not np.all((row == 0) | (row == 1)):
            raise ValueError(f"head_mask entries must be 0 (pruned) or 1 (kept); got {row} in layer {l}")
        kept = int(row.sum())
        if kept == 0:
            raise ValueError(f"head_mask prunes all {h} heads of layer {l}; keep at least one head per layer")
        gates.append(jnp.asarray(row))
        scales.append(1.0 / math.sqrt(kept))
    return tuple(gates), tuple(scales)


def output_with_gates(params: Params, x: jnp.ndarray, gates: tuple, scales: tuple) -> jnp.ndarray:
    """f(x) (P,) with head h of layer l multiplied by gates[l][h] and the layer's sum by scales[l] (traceable)."""
    dtype = params.V0.dtype
    x = x.astype(dtype)
    z = jnp.einsum("ni,bit->bnt", params.V0, x)
    L = len(params.V)
    for l in range(L):
        omega = layer_heads(params.Q[l], params.K[l])(x)  # (P, H_l, T_key, T_query)
        g = gates[l].astype(dtype)
        if l == L - 1:  # mean pooling over queries commutes with the (linear) last layer
            zs = jnp.einsum("bms,bhs->bhm", z, omega.mean(axis=-1))
            return scales[l] * jnp.einsum("h,hnm,bhm,n->b", g, params.V[l], zs, params.a)
        zs = jnp.einsum("bms,bhst->bhmt", z, omega)
        z = scales[l] * jnp.einsum("h,hnm,bhmt->bnt", g, params.V[l], zs)
    raise ValueError("params has no attention layer")


_output_jit = jax.jit(output_with_gates)


def check_inputs(params: Params, x) -> np.ndarray:
    arch = architecture_of(params)
    return as_float_array("x", x, shape=(None, arch.input_width, None))


def check_targets(y, n: int) -> np.ndarray:
    y = as_float_array("y", y, ndim=1)
    if y.shape[0] != n:
        raise ValueError(f"y has {y.shape[0]} entries but x has {n} examples")
    if not np.all(np.abs(y) == 1):
        raise ValueError("y must hold labels +1 / -1")
    return y


def gd_output(params: Params, x, head_mask=None, chunk_size: int = 512) -> np.ndarray:
    """The trained network's output f(x) (P,) float64 for inputs x (P, N0, T).

    head_mask: optional (L, H) array (or one vector per layer) in {0, 1}; a pruned head's output is zeroed and
    the remaining sum is scaled by (H_l - #dropped)^-1/2 instead of H_l^-1/2 (spec E.7).
    """
    x = check_inputs(params, x)
    gates, scales = head_gates(params, head_mask)
    out = [np.asarray(_output_jit(params, jnp.asarray(x[i:i + chunk_size]), gates, scales), dtype=np.float64)
           for i in range(0, x.shape[0], chunk_size)]
    return np.concatenate(out)


def gd_loss(params: Params, x, y, head_mask=None) -> float:
    """Mean squared error mean_mu (f(x_mu) - y_mu)^2 of the trained network."""
    f = gd_output(params, x, head_mask)
    return float(np.mean((f - check_targets(y, f.shape[0])) ** 2))


def gd_accuracy(params: Params, x, y, head_mask=None) -> float:
    """Sign accuracy of the trained network: fraction with sign(f(x)) == y (f = 0 counts as wrong)."""
    f = gd_output(params, x, head_mask)
    return float(np.mean(np.sign(f) == check_targets(y, f.shape[0])))


def model_attention(params: Params, x) -> list[jnp.ndarray]:
    """The network's own attention on x: per layer (P, H_l, T_key, T_query)."""
    x = jnp.asarray(check_inputs(params, x), dtype=params.V0.dtype)
    return [layer_heads(q, k)(x) for q, k in zip(params.Q, params.K)]


def attention_layers(params: Params) -> list[QKHeads]:
    """The trained query/key weights as float64 `attnpaths.QKHeads`, one per layer (Q, K: (H_l, G, N0)), so
    that `attnpaths.attention_matrices(attention_layers(params), x)` is the network's attention (spec E.3)."""
    architecture_of(params)
    return [QKHeads(np.asarray(q, dtype=np.float64), np.asarray(k, dtype=np.float64))
            for q, k in zip(params.Q, params.K)]
