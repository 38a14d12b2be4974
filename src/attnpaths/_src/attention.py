"""Attention of every head, computed from the raw input tokens (spec A.3).

Convention (spec H.1): an attention matrix is indexed [key s, query t] and the softmax runs over the key index
s separately for each query t. Three ways to give a layer's heads:

* `BilinearHeads(W, beta)`: A_st = beta * x_s^T W x_t (key on the left), W of shape (H_l, N0, N0).
* `QKHeads(Q, K)`: A_st = (K x_s) . (Q x_t) / sqrt(G), Q and K of shape (H_l, G, N0).
* an array of shape (P, H_l, T, T): attention the user computed for those P inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from attnpaths._src.checks import as_float_array


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
        if W.shape[1] != W.shape[2]:
            raise ValueError(f"W must have shape (H_l, N0, N0); got {W.shape}")
        if not np.isfinite(self.beta):
            raise ValueError(f"beta must be finite; got {self.beta}")
        object.__setattr__(self, "W", W)
        object.__setattr__(self, "beta", float(self.beta))

    @property
    def n_heads(self) -> int:
        return self.W.shape[0]

    @property
    def input_width(self) -> int:
        return self.W.shape[1]

    def scores(self, x: jnp.ndarray) -> jnp.ndarray:
        """x: (P, N0, T) -> pre-softmax scores (P, H_l, T_key, T_query)."""
        return self.beta * jnp.einsum("bis,hij,bjt->bhst", x, jnp.asarray(self.W), x)

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
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
        if Q.shape != K.shape:
            raise ValueError(f"Q and K must have the same shape (H_l, G, N0); got Q {Q.shape}, K {K.shape}")
        object.__setattr__(self, "Q", Q)
        object.__setattr__(self, "K", K)

    @property
    def n_heads(self) -> int:
        return self.Q.shape[0]

    @property
    def input_width(self) -> int:
        return self.Q.shape[2]

    def scores(self, x: jnp.ndarray) -> jnp.ndarray:
        q = jnp.einsum("hgi,bit->bhgt", jnp.asarray(self.Q), x)
        k = jnp.einsum("hgi,bis->bhgs", jnp.asarray(self.K), x)
        return jnp.einsum("bhgs,bhgt->bhst", k, q) / jnp.sqrt(self.Q.shape[1])

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        return jax.nn.softmax(self.scores(x), axis=-2)


Layer = Union[BilinearHeads, QKHeads, np.ndarray]


def check_layers(layers: Sequence[Layer], heads: Sequence[int], n_examples: int, n0: int, n_tokens: int) -> list:
    """Validate one attention description per layer against the architecture and the inputs.

    Returns the list with user-computed attention converted to float64 arrays.
    """
    if isinstance(layers, (BilinearHeads, QKHeads, np.ndarray)) or not isinstance(layers, Sequence):
        raise ValueError("attention must be a list with one entry per layer (BilinearHeads, QKHeads or an "
                         f"array (P, H_l, T, T)); got {type(layers).__name__}")
    if len(layers) != len(heads):
        raise ValueError(f"attention has {len(layers)} layers but the network has L = {len(heads)} "
                         f"(heads = {tuple(heads)})")
    out = []
    for l, (layer, h) in enumerate(zip(layers, heads)):
        if isinstance(layer, (BilinearHeads, QKHeads)):
            if layer.n_heads != h:
                raise ValueError(f"attention[{l}] has {layer.n_heads} heads but layer {l + 1} of the network "
                                 f"has H_{l + 1} = {h}")
            if layer.input_width != n0:
                raise ValueError(f"attention[{l}] acts on tokens of width {layer.input_width} but x has "
                                 f"N0 = {n0}")
            out.append(layer)
        else:
            a = as_float_array(f"attention[{l}]", layer, shape=(n_examples, h, n_tokens, n_tokens))
            out.append(a)
    return out


def attention_matrices(layers: Sequence[Layer], x: jnp.ndarray) -> list[jnp.ndarray]:
    """Attention of each layer on inputs x (P, N0, T): list of (P, H_l, T_key, T_query) arrays."""
    return [layer(x) if callable(layer) else jnp.asarray(layer) for layer in layers]
