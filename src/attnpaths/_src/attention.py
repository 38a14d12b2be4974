"""Attention of every head, computed from the raw input tokens (spec A.3).

Convention (spec H.1): an attention matrix is indexed [key s, query t] and the softmax runs over the key index
s separately for each query t. A layer's heads are any object that satisfies the `Heads` protocol:

* `BilinearHeads(W, beta)`: A_st = beta * x_s^T W x_t (key on the left), W of shape (H_l, N0, N0).
* `QKHeads(Q, K)`: A_st = (K x_s) . (Q x_t) / sqrt(G), Q and K of shape (H_l, G, N0).
* `GivenAttention(omega)`: attention (P, H_l, T, T) the user computed for a fixed set of P inputs.
* a user's own class (relative-position, ALiBi, heads taken from a trained model, ...): nothing in the library
  needs to change. `register_heads` gives it a name that configuration files and the CLI can use.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

from attnpaths._src.checks import as_float_array
from attnpaths._src.registry import Registry


@runtime_checkable
class Heads(Protocol):
    """The heads of one attention layer: a function from inputs to attention matrices (spec A.3).

    Attributes:
      n_heads: H_l, the number of heads of the layer.
      input_width: N0, the token width the heads act on; None if any width is accepted.

    Calling it on inputs x of shape (P, N0, T) (tokens as columns, float64) returns the attention
    (P, H_l, T_key, T_query), normalised over keys (axis -2) for each query. The library checks the shape and
    finiteness of what comes back and raises a ValueError naming the layer if either is wrong.
    """

    @property
    def n_heads(self) -> int: ...

    @property
    def input_width(self) -> int | None: ...

    def __call__(self, x: jax.Array) -> jax.Array: ...


@runtime_checkable
class ExampleBound(Protocol):
    """Heads whose attention exists only for a fixed set of examples (such as `GivenAttention`).

    `n_examples` is that set's size; `take(rows)` returns the heads of the examples `rows` (a slice), which
    lets `path_features` process the inputs in chunks.
    """

    @property
    def n_examples(self) -> int: ...

    def take(self, rows: slice) -> Heads: ...


@dataclass(frozen=True, eq=False)
class BilinearHeads:
    """Heads with bilinear scores A_st = beta x_s^T W^(h) x_t ("W style", spec A.3).

    W: (H_l, N0, N0), key index on the left. beta: inverse softmax temperature (multiplied into W).
    hardmax: one-hot attention on the arg-max key instead of the softmax.
    """

    W: np.ndarray
    beta: float = 1.0
    hardmax: bool = False

    def __post_init__(self):
        W = as_float_array("W", self.W, ndim=3)
        if W.shape[1] != W.shape[2] or W.size == 0:
            raise ValueError(f"W must have shape (H_l, N0, N0) with H_l, N0 >= 1; got {W.shape}")
        beta = as_float_array("beta", self.beta, ndim=0)
        object.__setattr__(self, "W", W)
        object.__setattr__(self, "beta", float(beta))

    @property
    def n_heads(self) -> int:
        return self.W.shape[0]

    @property
    def input_width(self) -> int:
        return self.W.shape[1]

    def scores(self, x: jax.Array) -> jax.Array:
        """x: (P, N0, T) -> pre-softmax scores (P, H_l, T_key, T_query)."""
        return self.beta * jnp.einsum("bis,hij,bjt->bhst", x, jnp.asarray(self.W), x)

    def __call__(self, x: jax.Array) -> jax.Array:
        a = self.scores(x)
        if self.hardmax:
            return jax.nn.one_hot(jnp.argmax(a, axis=-2), a.shape[-2], axis=-2, dtype=a.dtype)
        return jax.nn.softmax(a, axis=-2)


@dataclass(frozen=True, eq=False)
class QKHeads:
    """Heads with query/key scores A_st = (K x_s) . (Q x_t) / sqrt(G) ("QK style", spec A.3).

    Q, K: (H_l, G, N0) with G the query/key dimension.
    """

    Q: np.ndarray
    K: np.ndarray

    def __post_init__(self):
        Q = as_float_array("Q", self.Q, ndim=3)
        K = as_float_array("K", self.K, ndim=3)
        if Q.shape != K.shape or Q.size == 0:
            raise ValueError(f"Q and K must have the same shape (H_l, G, N0), all >= 1; got Q {Q.shape}, "
                             f"K {K.shape}")
        object.__setattr__(self, "Q", Q)
        object.__setattr__(self, "K", K)

    @property
    def n_heads(self) -> int:
        return self.Q.shape[0]

    @property
    def input_width(self) -> int:
        return self.Q.shape[2]

    def scores(self, x: jax.Array) -> jax.Array:
        q = jnp.einsum("hgi,bit->bhgt", jnp.asarray(self.Q), x)
        k = jnp.einsum("hgi,bis->bhgs", jnp.asarray(self.K), x)
        return jnp.einsum("bhgs,bhgt->bhst", k, q) / jnp.sqrt(self.Q.shape[1])

    def __call__(self, x: jax.Array) -> jax.Array:
        return jax.nn.softmax(self.scores(x), axis=-2)


@dataclass(frozen=True, eq=False)
class GivenAttention:
    """Attention computed elsewhere for a fixed set of P inputs: omega of shape (P, H_l, T_key, T_query).

    Calling it returns omega whatever the token values (the inputs must be the P examples it was computed for,
    in the same order); it acts on tokens of any width. Integer or float32 arrays are converted to float64.
    """

    omega: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "omega", _check_omega("omega", self.omega))

    @property
    def n_heads(self) -> int:
        return self.omega.shape[1]

    @property
    def input_width(self) -> None:
        return None

    @property
    def n_examples(self) -> int:
        return self.omega.shape[0]

    def take(self, rows: slice) -> "GivenAttention":
        return GivenAttention(self.omega[rows])

    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.asarray(self.omega)


def _check_omega(name: str, value) -> np.ndarray:
    omega = as_float_array(name, value, ndim=4)
    if omega.size == 0 or omega.shape[2] != omega.shape[3]:
        raise ValueError(f"{name} must have shape (P, H_l, T, T) with P, H_l, T >= 1; got {omega.shape}")
    return omega


def as_heads(name: str, layer: Any) -> Heads:
    """`layer` itself if it satisfies `Heads`; an array-like becomes `GivenAttention(layer)` (errors name `name`)."""
    return layer if isinstance(layer, Heads) else GivenAttention(_check_omega(name, layer))


def evaluate_heads(name: str, layer: Heads, x: jax.Array) -> jax.Array:
    """layer(x) checked at the entry: shape (P, H_l, T, T) for x (P, N0, T), finite, float64."""
    P, _, T = x.shape
    want = (P, layer.n_heads, T, T)
    omega = layer(x)
    shape = tuple(np.shape(omega))
    if shape != want:
        raise ValueError(f"{name} ({type(layer).__name__}) returned attention of shape {shape}; expected "
                         f"(P, H_l, T_key, T_query) = {want}")
    omega = jnp.asarray(omega)
    if not jnp.issubdtype(omega.dtype, jnp.floating):
        raise ValueError(f"{name} ({type(layer).__name__}) returned {omega.dtype} attention; expected real "
                         "floating point")
    if not bool(jnp.all(jnp.isfinite(omega))):
        raise ValueError(f"{name} ({type(layer).__name__}) returned NaN/inf attention: check the head's "
                         "parameters (e.g. beta and the scale of W, Q, K)")
    return omega.astype(jnp.float64)


def check_layers(layers: Sequence, heads: Sequence[int], n_examples: int, n0: int) -> list[Heads]:
    """Validate one `Heads` per layer (array-likes are wrapped in `GivenAttention`) against the network and x.

    heads: (H_1, ..., H_L) of the network; n_examples, n0: P and N0 of the inputs. Returns the list of heads.
    """
    if isinstance(layers, (Heads, str)) or not isinstance(layers, Sequence):
        raise ValueError("attention must be a list with one Heads (BilinearHeads, QKHeads, GivenAttention or "
                         f"your own) per layer; got {type(layers).__name__}")
    if len(layers) != len(heads):
        raise ValueError(f"attention has {len(layers)} layers but the network has L = {len(heads)} "
                         f"(heads = {tuple(heads)})")
    out = []
    for l, (layer, h) in enumerate(zip(layers, heads)):
        layer = as_heads(f"attention[{l}]", layer)
        if layer.n_heads != h:
            raise ValueError(f"attention[{l}] has {layer.n_heads} heads but layer {l + 1} of the network has "
                             f"H_{l + 1} = {h}")
        if layer.input_width is not None and layer.input_width != n0:
            raise ValueError(f"attention[{l}] acts on tokens of width {layer.input_width} but x has N0 = {n0}")
        if isinstance(layer, ExampleBound) and layer.n_examples != n_examples:
            raise ValueError(f"attention[{l}] holds attention for {layer.n_examples} examples but x has "
                             f"P = {n_examples}")
        out.append(layer)
    return out


def attention_matrices(layers: Sequence, x) -> list[jax.Array]:
    """Attention of each layer on inputs x (P, N0, T): list of (P, H_l, T_key, T_query) float64 arrays.

    layers: one `Heads` per layer (array-likes are taken as `GivenAttention`).
    """
    x = jnp.asarray(as_float_array("x", x, ndim=3))
    return [evaluate_heads(f"attention[{l}]", as_heads(f"attention[{l}]", layer), x)
            for l, layer in enumerate(layers)]


# ---- registry of head types, so that configuration files and the CLI can name a user's head type ----------
HEAD_TYPES: Registry[Callable[..., Heads]] = Registry("head type")


def register_heads(name: str, factory: Callable[..., Heads] | None = None, *, replace: bool = False):
    """Register a head type under `name`; `make_heads(name, **params)` then builds it.

    factory: a callable (usually the class) that takes keyword parameters and returns an object satisfying
    `Heads`. Without a factory, returns a decorator. A name already taken by another factory raises ValueError
    unless replace=True (the `Registry.register` rule, as for samplers and presets).

    Example::

        @dataclass(frozen=True)
        class ALiBiHeads:                     # relative-position attention, outside the library
            slopes: tuple
            input_width: int
            n_heads = property(lambda self: len(self.slopes))

            def __call__(self, x):            # (P, N0, T) -> (P, H_l, T_key, T_query)
                t = jnp.arange(x.shape[-1])
                bias = -jnp.asarray(self.slopes)[:, None, None] * jnp.abs(t[:, None] - t[None, :])
                return jax.nn.softmax(jnp.einsum("bis,bit->bst", x, x)[:, None] + bias, axis=-2)

        attnpaths.register_heads("alibi", ALiBiHeads)
        layer = attnpaths.make_heads("alibi", slopes=(0.5, 1.0), input_width=8)
    """
    if factory is None:  # the decorator form (it decorates a class or a function: callable)
        return HEAD_TYPES.register(name, replace=replace)
    if not callable(factory):
        raise ValueError(f"factory must be callable (e.g. a class); got {type(factory).__name__}")
    return HEAD_TYPES.register(name, factory, replace=replace)


def unregister_heads(name: str) -> None:
    """Remove the head type `name` from the registry (ValueError if it is not registered)."""
    HEAD_TYPES.unregister(name)


def head_types() -> tuple[str, ...]:
    """Names of the registered head types, sorted (the choices a configuration or the CLI offers)."""
    return tuple(sorted(HEAD_TYPES))


def make_heads(name: str, **params) -> Heads:
    """Build the registered head type `name` with keyword parameters; the result is checked against `Heads`."""
    factory = HEAD_TYPES[name]
    try:  # refuse unknown or missing parameters by name before building anything
        inspect.signature(factory).bind(**params)
    except TypeError as err:
        raise ValueError(f"head type {name!r}: {err}") from None
    layer = factory(**params)
    if not isinstance(layer, Heads):
        raise ValueError(f"head type {name!r} built a {type(layer).__name__}, which lacks n_heads, input_width "
                         "or __call__ (the Heads protocol)")
    return layer


register_heads("bilinear", BilinearHeads)
register_heads("qk", QKHeads)
register_heads("given", GivenAttention)
