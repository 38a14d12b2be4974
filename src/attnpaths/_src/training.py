"""The gradient-descent-trained attention network of experiment 2 (spec E.2), in JAX + optax.

    z^(0)   = V0 x                                                        V0: (N, N0), no 1/sqrt(N0)
    z^(l)_t = H_l^-1/2 sum_h V_l[h] sum_s z^(l-1)_s Omega^(l,h)_st(x)     V_l: (H_l, N, N), l = 1..L
    f(x)    = a . mean_t z^(L)_t                                          a: (N,)

with Omega^(l,h)_st = softmax_s((K x_s) . (Q x_t) / sqrt(G)) computed from the RAW input x at every layer
(Q_l, K_l: (H_l, G, N0)). No residual, no LayerNorm, no MLP, no biases; loss = mean (f - y)^2 with y = +-1.
This is the spec's `DualHeadNoLearningInputConstrainedLinearViT` with F = H_l summed heads and d_model = N.

Initialisation as PyTorch's default `nn.Linear`: every weight ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = N0
for V0, Q, K and N for V_l and a. Optimiser: `optax.adamw` (decoupled weight decay; the authors used PyTorch Adam
whose weight_decay is an L2 term added to the gradient).

Defaults: 2 layers x 4 heads, N = 64, G = 16 (the paper: N = 512, G = 128) so that a 2000-step run on the
digits task takes about a minute on 2 CPU cores. Everything runs in float64 (attnpaths turns x64 on).

Params are a `Params` NamedTuple (a pytree); the architecture is read from their shapes.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from attnpaths._src.atomic import write_atomic
from attnpaths._src.attention import QKHeads
from attnpaths._src.checks import as_float_array


# ----------------------------------------------------------------------------------------------------------------
# Architecture and parameters
# ----------------------------------------------------------------------------------------------------------------

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
    """

    input_width: int
    heads: tuple[int, ...] = (4, 4)
    width: int = 64
    qk_dim: int = 16

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
        object.__setattr__(self, "heads", heads)
        for name in ("input_width", "width", "qk_dim"):
            object.__setattr__(self, name, int(getattr(self, name)))

    @property
    def n_layers(self) -> int:
        return len(self.heads)

    def to_dict(self) -> dict:
        return {"input_width": self.input_width, "heads": list(self.heads), "width": self.width,
                "qk_dim": self.qk_dim}


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
    """The architecture implied by the shapes of params (checks that they are consistent)."""
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
    return Architecture(int(n0), tuple(heads), int(n), int(g))


def init_params(arch: Architecture, seed: int = 0) -> Params:
    """PyTorch-default initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for every weight, float64."""
    keys = iter(jax.random.split(jax.random.PRNGKey(seed), 3 * arch.n_layers + 2))

    def uniform(shape, fan_in):
        b = 1.0 / math.sqrt(fan_in)
        return jax.random.uniform(next(keys), shape, jnp.float64, -b, b)

    n, n0, g = arch.width, arch.input_width, arch.qk_dim
    V0 = uniform((n, n0), n0)
    Q = tuple(uniform((h, g, n0), n0) for h in arch.heads)
    K = tuple(uniform((h, g, n0), n0) for h in arch.heads)
    V = tuple(uniform((h, n, n), n) for h in arch.heads)
    return Params(V0, Q, K, V, uniform((n,), n))


# ----------------------------------------------------------------------------------------------------------------
# Forward pass
# ----------------------------------------------------------------------------------------------------------------

def _attention(Q: jnp.ndarray, K: jnp.ndarray, x: jnp.ndarray) -> jnp.ndarray:
    """(H, G, N0), (H, G, N0), x (P, N0, T) -> Omega (P, H, T_key, T_query); the same operations as
    `attnpaths.QKHeads`."""
    q = jnp.einsum("hgi,bit->bhgt", Q, x)
    k = jnp.einsum("hgi,bis->bhgs", K, x)
    return jax.nn.softmax(jnp.einsum("bhgs,bhgt->bhst", k, q) / jnp.sqrt(Q.shape[1]), axis=-2)


def _forward(params: Params, x: jnp.ndarray, gates: tuple, scales: tuple) -> jnp.ndarray:
    """f(x) (P,) with head h of layer l multiplied by gates[l][h] and the layer's sum by scales[l]."""
    z = jnp.einsum("ni,bit->bnt", params.V0, x)
    L = len(params.V)
    for l in range(L):
        omega = _attention(params.Q[l], params.K[l], x)
        if l == L - 1:  # mean pooling over queries commutes with the (linear) last layer
            zs = jnp.einsum("bms,bhs->bhm", z, omega.mean(axis=-1))
            return scales[l] * jnp.einsum("h,hnm,bhm,n->b", gates[l], params.V[l], zs, params.a)
        zs = jnp.einsum("bms,bhst->bhmt", z, omega)
        z = scales[l] * jnp.einsum("h,hnm,bhmt->bnt", gates[l], params.V[l], zs)
    raise AssertionError("unreachable")


def _mask_gates(params: Params, head_mask) -> tuple[tuple, tuple]:
    """Validated head mask -> (gates, scales): pruned heads gated to 0, sum rescaled by (H_l - dropped)^-1/2."""
    heads = [np.shape(v)[0] for v in params.V]
    if head_mask is None:
        return (tuple(jnp.ones(h) for h in heads), tuple(1.0 / math.sqrt(h) for h in heads))
    if isinstance(head_mask, np.ndarray) or isinstance(head_mask, jnp.ndarray):
        rows = list(np.asarray(head_mask))
    else:
        rows = [np.asarray(r) for r in head_mask]
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


_forward_jit = jax.jit(_forward)


def _check_x(params: Params, x) -> np.ndarray:
    arch = architecture_of(params)
    return as_float_array("x", x, shape=(None, arch.input_width, None))


def forward(params: Params, x, head_mask=None, chunk_size: int = 1024) -> jnp.ndarray:
    """Network output f(x) (P,) for inputs x (P, N0, T).

    head_mask: optional (L, H) array (or one vector per layer) in {0, 1}; a pruned head's output is zeroed and
    the remaining sum is scaled by (H_l - #dropped)^-1/2 instead of H_l^-1/2 (spec E.7).
    """
    x = _check_x(params, x)
    gates, scales = _mask_gates(params, head_mask)
    out = [_forward_jit(params, jnp.asarray(x[i:i + chunk_size]), gates, scales)
           for i in range(0, x.shape[0], chunk_size)]
    return jnp.concatenate(out)


def loss(params: Params, x, y, head_mask=None) -> float:
    """Mean squared error mean_mu (f(x_mu) - y_mu)^2."""
    f = forward(params, x, head_mask)
    y = _check_y(y, f.shape[0])
    return float(jnp.mean((f - y) ** 2))


def _check_y(y, n: int) -> np.ndarray:
    y = as_float_array("y", y, ndim=1)
    if y.shape[0] != n:
        raise ValueError(f"y has {y.shape[0]} entries but x has {n} examples")
    if not np.all(np.abs(y) == 1):
        raise ValueError("y must hold labels +1 / -1")
    return y


def accuracy(params: Params, x, y, head_mask=None) -> float:
    """Sign accuracy: fraction of examples with sign(f(x)) == y (f = 0 counts as wrong)."""
    f = np.asarray(forward(params, x, head_mask))
    y = _check_y(y, f.shape[0])
    return float(np.mean(np.sign(f) == y))


def model_attention(params: Params, x) -> list[jnp.ndarray]:
    """The network's own attention on x: per layer (P, H_l, T_key, T_query)."""
    x = jnp.asarray(_check_x(params, x))
    return [_attention(q, k, x) for q, k in zip(params.Q, params.K)]


def attention_layers(params: Params) -> list[QKHeads]:
    """The trained query/key weights as `attnpaths.QKHeads`, one per layer (Q, K: (H_l, G, N0)), so that
    `attnpaths.attention_matrices(attention_layers(params), x)` is the network's attention (spec E.3)."""
    architecture_of(params)
    return [QKHeads(np.asarray(q), np.asarray(k)) for q, k in zip(params.Q, params.K)]


# ----------------------------------------------------------------------------------------------------------------
# Analyses of a trained network (spec E.5c, E.7)
# ----------------------------------------------------------------------------------------------------------------

def path_readout_weights(params: Params) -> np.ndarray:
    """w_pi = a^T V_L[h_L] ... V_1[h_1], (H, N) with H = prod H_l and the lower-layer head outermost (spec H.2).

    Without the 1/sqrt(H_l) factors: f(x) = prod_l H_l^-1/2 sum_pi w_pi . V0 x_pi with x_pi the path-aggregated
    input of `attnpaths.path_token_weights` (mean readout).
    """
    architecture_of(params)
    w = np.asarray(params.a)[None, :]  # (1 path, N)
    for V in reversed(params.V):
        w = np.einsum("pi,hij->hpj", w, np.asarray(V)).reshape(-1, w.shape[1])
    return w


def gd_order_parameter(params: Params) -> np.ndarray:
    """U_GD = w_pi . w_pi' (H, H), unnormalised, with w_pi = a^T V_L[h_L] ... V_1[h_1] (spec E.5c); paths
    flattened with the lower-layer head outermost (pi = h_1 H_2 + h_2 for L = 2)."""
    w = path_readout_weights(params)
    return w @ w.T


def _uniform_heads(params: Params) -> int:
    heads = {np.shape(v)[0] for v in params.V}
    return max(heads)


def head_importance_gradient(params: Params, x, y, chunk_size: int = 512) -> np.ndarray:
    """Head importance of Michel et al. (2019): I_lh = sum_mu |d loss_mu / d g_lh| at g = 1, (L, H).

    loss_mu = (f(x_mu) - y_mu)^2 with head h of layer l multiplied by a gate g_lh (the H_l^-1/2 normalisation
    is kept fixed). For layers with fewer heads than H = max H_l the missing entries are NaN.
    """
    x = _check_x(params, x)
    y = _check_y(y, x.shape[0])
    gates, scales = _mask_gates(params, None)

    def per_example(g, xc, yc):
        return (_forward(params, xc, g, scales) - yc) ** 2

    jac = jax.jit(jax.jacfwd(per_example))
    total = [np.zeros(np.shape(g)) for g in gates]
    for i in range(0, x.shape[0], chunk_size):
        J = jac(gates, jnp.asarray(x[i:i + chunk_size]), jnp.asarray(y[i:i + chunk_size]))
        for l, j in enumerate(J):
            total[l] += np.abs(np.asarray(j)).sum(axis=0)
    out = np.full((len(total), _uniform_heads(params)), np.nan)
    for l, t in enumerate(total):
        out[l, : len(t)] = t
    return out


def _parse_heads(order, params: Params) -> list[tuple[int, int]]:
    heads = [np.shape(v)[0] for v in params.V]
    out = []
    for item in order:
        try:
            l, h = (int(v) for v in item)
        except (TypeError, ValueError):
            raise ValueError(f"order must be a list of (layer, head) pairs; got {item!r}") from None
        if not (0 <= l < len(heads) and 0 <= h < heads[l]):
            raise ValueError(f"head ({l}, {h}) does not exist: layers 0..{len(heads) - 1}, heads per layer "
                             f"{tuple(heads)} (0-based)")
        out.append((l, h))
    if len(set(out)) != len(out):
        raise ValueError(f"order lists a head twice: {out}")
    return out


def head_mask_without(params: Params, dropped) -> list[np.ndarray]:
    """Head mask (one 0/1 vector per layer) with the (layer, head) pairs in `dropped` pruned (0-based)."""
    mask = [np.ones(np.shape(v)[0]) for v in params.V]
    for l, h in _parse_heads(dropped, params):
        mask[l][h] = 0.0
    return mask


def prune_accuracy_curve(params: Params, x, y, order) -> np.ndarray:
    """Accuracy after pruning the first k heads of `order` ((layer, head) pairs, 0-based), k = 0 .. len-1
    (spec E.7, Fig. 3f). NaN where some layer would have no head left (the network is then undefined)."""
    order = _parse_heads(order, params)
    x = _check_x(params, x)
    y = _check_y(y, x.shape[0])
    acc = np.full(len(order), np.nan)
    for k in range(len(order)):
        mask = head_mask_without(params, order[:k])
        if all(m.sum() > 0 for m in mask):
            acc[k] = accuracy(params, x, y, mask)
    return acc


def single_head_drop_accuracy(params: Params, x, y) -> np.ndarray:
    """Accuracy after pruning each single head (L, H) (spec E.7, Fig. 3e); NaN for a layer's only head."""
    x = _check_x(params, x)
    y = _check_y(y, x.shape[0])
    out = np.full((len(params.V), _uniform_heads(params)), np.nan)
    for l, V in enumerate(params.V):
        for h in range(np.shape(V)[0]):
            mask = head_mask_without(params, [(l, h)])
            if mask[l].sum() > 0:
                out[l, h] = accuracy(params, x, y, mask)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings.

    steps: number of optimiser steps.
    batch_size: examples per minibatch (min(batch_size, P) is used). Each epoch is a fresh permutation drawn
      from (seed, epoch), the last incomplete batch of an epoch is skipped.
    learning_rate, weight_decay: of optax.adamw (b1 0.9, b2 0.999, eps 1e-8).
    seed: seed of the initialisation and of the minibatch order.
    checkpoint_every: write the checkpoint every this many steps (0: only at the end); needs a checkpoint path.
    """

    steps: int = 2000
    batch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 5e-5
    seed: int = 0
    checkpoint_every: int = 0

    def __post_init__(self):
        _positive_int("steps", self.steps)
        _positive_int("batch_size", self.batch_size)
        if not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool):
            raise ValueError(f"seed must be an int; got {self.seed!r}")
        if not (isinstance(self.checkpoint_every, (int, np.integer)) and self.checkpoint_every >= 0):
            raise ValueError(f"checkpoint_every must be an int >= 0; got {self.checkpoint_every!r}")
        for name in ("learning_rate", "weight_decay"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0; got {v!r}")
        if self.learning_rate == 0:
            raise ValueError("learning_rate must be > 0")

    def optimizer(self) -> optax.GradientTransformation:
        return _adamw(self.learning_rate, self.weight_decay)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class TrainResult(NamedTuple):
    """params: the trained weights. losses: (steps,) minibatch loss before each step. step: steps done."""

    params: Params
    losses: np.ndarray
    step: int


class Checkpoint(NamedTuple):
    params: Params
    opt_state: object
    step: int
    losses: np.ndarray
    architecture: Architecture
    config: TrainConfig
    data_hash: str


def _mse(params, x, y, gates, scales):
    return jnp.mean((_forward(params, x, gates, scales) - y) ** 2)


def _adamw(learning_rate: float, weight_decay: float) -> optax.GradientTransformation:
    return optax.adamw(learning_rate, b1=0.9, b2=0.999, eps=1e-8, weight_decay=weight_decay)


@functools.lru_cache(maxsize=16)
def _make_step(learning_rate: float, weight_decay: float, heads: tuple):
    """The jitted AdamW step (cached so that repeated runs with the same settings compile once)."""
    optimizer = _adamw(learning_rate, weight_decay)
    gates = tuple(jnp.ones(h) for h in heads)
    scales = tuple(1.0 / math.sqrt(h) for h in heads)

    @jax.jit
    def step(params, opt_state, xb, yb):
        value, grads = jax.value_and_grad(_mse)(params, xb, yb, gates, scales)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    return step


def _batch_indices(seed: int, step: int, n: int, batch: int) -> np.ndarray:
    """Indices of minibatch `step`: epoch e = step // (n // batch) uses the permutation of (seed, e)."""
    per_epoch = n // batch
    epoch, i = divmod(step, per_epoch)
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    return perm[i * batch:(i + 1) * batch]


def _data_hash(x: np.ndarray, y: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in (x, y):
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def save_checkpoint(path, params: Params, opt_state, step: int, losses, config: TrainConfig,
                    data_hash: str = "") -> None:
    """Write params, optimiser state, step, loss history, config and architecture to `path` (.npz) atomically
    (a temporary file in the same folder, then os.replace)."""
    path = Path(path)
    arch = architecture_of(params)
    arrays = {f"params_{i}": np.asarray(v) for i, v in enumerate(jax.tree_util.tree_leaves(params))}
    arrays.update({f"opt_{i}": np.asarray(v) for i, v in enumerate(jax.tree_util.tree_leaves(opt_state))})
    meta = {"format": "attnpaths.training/1", "step": int(step), "architecture": arch.to_dict(),
            "config": config.to_dict(), "data_hash": data_hash}
    arrays["meta"] = np.array(json.dumps(meta))
    arrays["losses"] = np.asarray(losses, dtype=np.float64)
    write_atomic(path, lambda f: np.savez(f, **arrays))


def load_checkpoint(path, architecture: Architecture | None = None) -> Checkpoint:
    """Read a checkpoint written by `save_checkpoint` / `train`.

    Raises ValueError when `architecture` is given and differs from the checkpoint's (naming the fields), or
    when the file is not such a checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    with np.load(path, allow_pickle=False) as f:
        if "meta" not in f.files:
            raise ValueError(f"{path} is not an attnpaths training checkpoint (no 'meta' entry)")
        meta = json.loads(str(f["meta"]))
        data = {k: f[k] for k in f.files}
    saved = Architecture(meta["architecture"]["input_width"], tuple(meta["architecture"]["heads"]),
                         meta["architecture"]["width"], meta["architecture"]["qk_dim"])
    if architecture is not None and architecture != saved:
        fields = ("input_width", "heads", "width", "qk_dim")
        diff = [f"{k}: checkpoint {getattr(saved, k)!r}, requested {getattr(architecture, k)!r}"
                for k in fields if getattr(saved, k) != getattr(architecture, k)]
        raise ValueError(f"checkpoint {path} was written for another architecture ({'; '.join(diff)})")
    config = TrainConfig(**meta["config"])
    template = init_params(saved)
    leaves, treedef = jax.tree_util.tree_flatten(template)
    params = jax.tree_util.tree_unflatten(treedef, [jnp.asarray(data[f"params_{i}"]) for i in range(len(leaves))])
    architecture_of(params)
    opt_template = config.optimizer().init(template)
    o_leaves, o_def = jax.tree_util.tree_flatten(opt_template)
    o_saved = [jnp.asarray(data[f"opt_{i}"]) for i in range(len(o_leaves))]
    for i, (a, b) in enumerate(zip(o_leaves, o_saved)):
        if a.shape != b.shape or a.dtype != b.dtype:
            raise ValueError(f"{path}: optimiser state entry {i} is {b.shape} {b.dtype}; expected "
                             f"{a.shape} {a.dtype}")
    opt_state = jax.tree_util.tree_unflatten(o_def, o_saved)
    return Checkpoint(params, opt_state, int(meta["step"]), np.asarray(data["losses"]), saved, config,
                      meta.get("data_hash", ""))


def train(arch: Architecture, x, y, config: TrainConfig = TrainConfig(), checkpoint=None,
          resume: bool = False, progress: bool = True) -> TrainResult:
    """Train the network by minibatch AdamW on the MSE (spec E.2).

    Args:
      arch: the architecture (arch.input_width must equal x's N0).
      x: (P, N0, T) training inputs; y: (P,) labels +-1.
      config: optimisation settings (seed, steps, batch size, learning rate, weight decay, checkpoint_every).
      checkpoint: path of the .npz checkpoint written every config.checkpoint_every steps and at the end.
      resume: continue from `checkpoint` if it exists (same data, architecture and settings; config.steps may
        be larger). The result is bitwise identical to an uninterrupted run on the same machine.
      progress: show a tqdm progress bar.

    Returns:
      TrainResult(params, losses (steps,), step).
    """
    from tqdm.auto import tqdm

    if not isinstance(arch, Architecture):
        raise ValueError(f"arch must be an Architecture; got {type(arch).__name__}")
    x = as_float_array("x", x, ndim=3)
    if x.shape[1] != arch.input_width:
        raise ValueError(f"x has token width N0 = {x.shape[1]} but arch.input_width = {arch.input_width}")
    y = _check_y(y, x.shape[0])
    if resume and checkpoint is None:
        raise ValueError("resume=True needs a checkpoint path")
    if config.checkpoint_every and checkpoint is None:
        raise ValueError("config.checkpoint_every > 0 needs a checkpoint path")
    optimizer = config.optimizer()
    data_hash = _data_hash(x, y)
    if resume and Path(checkpoint).exists():
        ck = load_checkpoint(checkpoint, arch)
        same = {k: v for k, v in config.to_dict().items() if k != "steps"}
        old = {k: v for k, v in ck.config.to_dict().items() if k != "steps"}
        if same != old:
            diff = [f"{k}: checkpoint {old[k]!r}, now {same[k]!r}" for k in same if same[k] != old[k]]
            raise ValueError(f"cannot resume {checkpoint}: the training settings differ ({'; '.join(diff)})")
        if ck.data_hash != data_hash:
            raise ValueError(f"cannot resume {checkpoint}: it was trained on other data (x, y)")
        if ck.step > config.steps:
            raise ValueError(f"checkpoint {checkpoint} is at step {ck.step} > config.steps = {config.steps}")
        params, opt_state, start, losses = ck.params, ck.opt_state, ck.step, list(ck.losses)
    else:
        params = init_params(arch, config.seed)
        opt_state, start, losses = optimizer.init(params), 0, []
    step_fn = _make_step(config.learning_rate, config.weight_decay, arch.heads)
    batch = min(config.batch_size, x.shape[0])
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, disable=not progress,
               desc="train", leave=False)
    for step in bar:
        idx = _batch_indices(config.seed, step, x.shape[0], batch)
        params, opt_state, value = step_fn(params, opt_state, jnp.asarray(x[idx]), jnp.asarray(y[idx]))
        losses.append(float(value))
        if not math.isfinite(losses[-1]):
            raise FloatingPointError(f"the loss became {losses[-1]} at step {step}; lower learning_rate")
        if progress and step % 50 == 0:
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
        done = step + 1
        if checkpoint is not None and config.checkpoint_every and done % config.checkpoint_every == 0:
            save_checkpoint(checkpoint, params, opt_state, done, losses, config, data_hash)
    bar.close()
    if checkpoint is not None:
        save_checkpoint(checkpoint, params, opt_state, config.steps, losses, config, data_hash)
    return TrainResult(params, np.asarray(losses), config.steps)
