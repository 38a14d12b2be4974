"""Attention paths and the path-aggregated input (spec B.1).

A path is one head per layer, pi = (h_1, ..., h_L), flattened with the LOWER layer outermost
(pi = h_1 H_2 ... H_L + ... + h_L, spec H.2). Its aggregated input is

    x_pi = sum_s x_s [Omega^(1,h_1) Omega^(2,h_2) ... Omega^(L-1,h_{L-1}) omega^(L,h_L)]_s     (B.1)

with omega^(L) the last layer's attention reduced over queries by the token readout (A.5). The library's path
features are xi_pi = x_pi / sqrt(N0 H), with N0 the full token width and H the number of paths of THIS network
(spec H.3); the input prior variance s_0 is applied in the kernels, not here, so that it stays a runtime number.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from attnpaths._src.attention import Layer, attention_matrices, check_layers
from attnpaths._src.checks import as_float_array
from attnpaths._src.spec import NetworkSpec


def token_readout(omega: jnp.ndarray, readout: str) -> jnp.ndarray:
    """Reduce the last layer's attention (P, H_L, T_key, T_query) over queries -> (P, H_L, T_key) (A.5)."""
    if readout == "mean":
        return omega.mean(axis=-1)
    if readout == "first":
        return omega[..., 0]
    if readout == "last":
        return omega[..., -1]
    raise ValueError(f"readout must be one of 'mean', 'first', 'last'; got {readout!r}")


def path_token_weights(attention: Sequence[jnp.ndarray], readout: str) -> jnp.ndarray:
    """Weight of every input token in every path: (P, H, T).

    attention: per layer (P, H_l, T_key, T_query). Row pi of the result is
    Omega^(1,h_1) ... Omega^(L-1,h_{L-1}) omega^(L,h_L) (a product over token indices).
    """
    v = token_readout(attention[-1], readout)  # (P, H_L, T)
    for omega in reversed(attention[:-1]):
        # new[b, h, H', t] = sum_s Omega[b, h, t(key), s(query)] v[b, H', s]; layer-l head becomes outermost.
        v = jnp.einsum("bhts,bHs->bhHt", omega, v)
        v = v.reshape(v.shape[0], -1, v.shape[-1])
    return v


@jax.jit
def _aggregate(x: jnp.ndarray, weights: jnp.ndarray) -> jnp.ndarray:
    n0, n_paths = x.shape[1], weights.shape[1]
    return jnp.einsum("bit,bpt->bip", x, weights) / jnp.sqrt(n0 * n_paths)


def path_features(spec: NetworkSpec, attention: Sequence[Layer], x, chunk_size: int = 512) -> jnp.ndarray:
    """Normalised path-aggregated inputs xi = x_pi / sqrt(N0 H) (spec B.1).

    Args:
      spec: the network (its heads and token readout are used).
      attention: one entry per layer: `BilinearHeads`, `QKHeads` or an array (P, H_l, T, T) computed for x.
      x: (P, N0, T) inputs, tokens as columns.
      chunk_size: examples per chunk, to bound the memory of the attention tensors.

    Returns:
      xi: (P, N0, H) float64.
    """
    x = as_float_array("x", x, ndim=3)
    P, n0, n_tokens = x.shape
    if P < 1 or n_tokens < 1:
        raise ValueError(f"x must have shape (P, N0, T) with P >= 1 and T >= 1; got {x.shape}")
    layers = check_layers(attention, spec.heads, P, n0, n_tokens)
    out = []
    for start in range(0, P, chunk_size):
        sl = slice(start, min(start + chunk_size, P))
        xc = jnp.asarray(x[sl])
        chunk_layers = [layer if callable(layer) else layer[sl] for layer in layers]
        weights = path_token_weights(attention_matrices(chunk_layers, xc), spec.readout)
        out.append(_aggregate(xc, weights))
    xi = jnp.concatenate(out, axis=0)
    if not bool(jnp.all(jnp.isfinite(xi))):
        raise ValueError("path features are not finite: the attention produced NaN/inf (check beta and the "
                         "scale of W, Q, K)")
    return xi


def check_features(name: str, xi, n_paths: int) -> jnp.ndarray:
    """Validate user-supplied path features (P, N0, H)."""
    xi = as_float_array(name, xi, ndim=3)
    if xi.shape[2] != n_paths:
        raise ValueError(f"{name} has {xi.shape[2]} paths (last axis) but the network has H = {n_paths}")
    return jnp.asarray(xi)


def unfold_paths(values: np.ndarray, heads: Sequence[int]) -> np.ndarray:
    """Reshape a path axis of length H = prod(heads) into L head axes (lower layer first)."""
    return np.asarray(values).reshape(tuple(heads) + np.shape(values)[1:])
