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

from attnpaths._src.attention import ExampleBound, check_layers, evaluate_heads
from attnpaths._src.checks import as_count, as_float_array
from attnpaths._src.spec import NetworkSpec


_TOKEN_READOUTS = {  # spec A.5: reduce over the query index
    "mean": lambda omega: omega.mean(axis=-1),
    "first": lambda omega: omega[..., 0],
    "last": lambda omega: omega[..., -1],
}


def token_readout(omega: jax.Array, readout: str) -> jax.Array:
    """Reduce the last layer's attention (P, H_L, T_key, T_query) over queries -> (P, H_L, T_key) (A.5)."""
    if readout not in _TOKEN_READOUTS:
        raise ValueError(f"readout must be one of {tuple(_TOKEN_READOUTS)}; got {readout!r}")
    return _TOKEN_READOUTS[readout](omega)


def path_token_weights(attention: Sequence[jax.Array], readout: str) -> jax.Array:
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
def _aggregate(x: jax.Array, weights: jax.Array) -> jax.Array:
    n0, n_paths = x.shape[1], weights.shape[1]
    return jnp.einsum("bit,bpt->bip", x, weights) / jnp.sqrt(n0 * n_paths)


def path_features(spec: NetworkSpec, attention: Sequence, x, chunk_size: int = 512) -> jax.Array:
    """Normalised path-aggregated inputs xi = x_pi / sqrt(N0 H) (spec B.1).

    Args:
      spec: the network (its heads and token readout are used).
      attention: one `Heads` per layer (`BilinearHeads`, `QKHeads`, `GivenAttention` or a user's own class);
        an array (P, H_l, T, T) is taken as `GivenAttention`.
      x: (P, N0, T) inputs, tokens as columns; int or float32 input is converted to float64.
      chunk_size: examples per chunk (an int >= 1), to bound the memory of the attention tensors.

    Returns:
      xi: (P, N0, H) float64.

    Raises:
      ValueError: naming the argument (or attention[l]) for bad shapes, NaN/inf, empty arrays, a head whose
        output is not (P, H_l, T, T) or not finite, and chunk_size < 1.
    """
    chunk_size = as_count("chunk_size", chunk_size)
    x = as_float_array("x", x, ndim=3)
    P, n0, n_tokens = x.shape
    if min(x.shape) < 1:
        raise ValueError(f"x must have shape (P, N0, T) with P, N0, T >= 1; got {x.shape}")
    layers = check_layers(attention, spec.heads, P, n0)
    if any(isinstance(layer, ExampleBound) for layer in layers):
        return _features_eager(spec, layers, x, chunk_size)
    chunk = min(chunk_size, P)
    compiled = _compiled_chunk(spec.readout, layers)
    out = []
    for start in range(0, P, chunk):
        xc = x[start:start + chunk]
        n = xc.shape[0]
        if n < chunk:  # pad the last chunk: every chunk has one shape, so one executable serves them all
            xc = np.concatenate([xc, np.zeros((chunk - n,) + xc.shape[1:])])
        try:
            xi, finite = compiled(jnp.asarray(xc))
        except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError,
                jax.errors.TracerBoolConversionError):
            return _features_eager(spec, layers, x, chunk_size)  # a head written with NumPy: run it eagerly
        if not all(bool(f) for f in finite):
            bad = next(l for l, f in enumerate(finite) if not bool(f))
            evaluate_heads(f"attention[{bad}]", layers[bad], jnp.asarray(xc))  # raises the error naming it
        out.append(xi[:n])
    return _finite_features(jnp.concatenate(out, axis=0))


def _compiled_chunk(readout: str, layers: Sequence):
    """layers' attention and the path features of one chunk, as one compiled function (heads are constants)."""

    def chunk(xc):
        omegas = [_checked_shape(f"attention[{l}]", layer, xc) for l, layer in enumerate(layers)]
        finite = [jnp.all(jnp.isfinite(o)) for o in omegas]
        return _aggregate(xc, path_token_weights(omegas, readout)), finite

    return jax.jit(chunk)


def _checked_shape(name: str, layer, x) -> jax.Array:
    """layer(x) with the shape and dtype checks of `evaluate_heads` (both static, so they work under jit)."""
    P, _, T = x.shape
    omega = layer(x)
    want = (P, layer.n_heads, T, T)
    if tuple(np.shape(omega)) != want or not jnp.issubdtype(jnp.result_type(omega), jnp.floating):
        return evaluate_heads(name, layer, x)  # raises the error naming the layer
    return jnp.asarray(omega, dtype=jnp.float64)


def _features_eager(spec: NetworkSpec, layers, x: np.ndarray, chunk_size: int) -> jax.Array:
    out = []
    for start in range(0, x.shape[0], chunk_size):
        rows = slice(start, min(start + chunk_size, x.shape[0]))
        xc = jnp.asarray(x[rows])
        chunk_layers = [layer.take(rows) if isinstance(layer, ExampleBound) else layer for layer in layers]
        omegas = [evaluate_heads(f"attention[{l}]", layer, xc) for l, layer in enumerate(chunk_layers)]
        out.append(_aggregate(xc, path_token_weights(omegas, spec.readout)))
    return _finite_features(jnp.concatenate(out, axis=0))


def _finite_features(xi: jax.Array) -> jax.Array:
    if not bool(jnp.all(jnp.isfinite(xi))):  # finite x and attention can still overflow for |x| ~ 1e300
        raise ValueError("path features overflowed to inf: rescale x")
    return xi


def check_features(name: str, xi, n_paths: int) -> jax.Array:
    """Validate path features (P, N0, H): finite, float64, P, N0 >= 1 and H = n_paths."""
    xi = as_float_array(name, xi, ndim=3)
    if xi.shape[2] != n_paths:
        raise ValueError(f"{name} has {xi.shape[2]} paths (last axis) but the network has H = {n_paths}")
    if xi.shape[0] < 1 or xi.shape[1] < 1:
        raise ValueError(f"{name} must have shape (P, N0, H) with P, N0 >= 1; got {xi.shape}")
    return jnp.asarray(xi)


def unfold_paths(values: np.ndarray, heads: Sequence[int]) -> np.ndarray:
    """Reshape a path axis of length H = prod(heads) into L head axes (lower layer first)."""
    return np.asarray(values).reshape(tuple(heads) + np.shape(values)[1:])
