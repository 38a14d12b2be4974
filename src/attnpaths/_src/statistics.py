"""The Gram route's sufficient statistics, accumulated over the examples in chunks on every local device.

    G = sum_mu xi^mu (x) xi^mu   (H, N0, H, N0),    b = sum_mu y^mu xi^mu   (H, N0),    y^T y

(`routes.GramStatistics`). The path features of a chunk are computed from its inputs x on the device that
accumulates it (chunks go round-robin over `jax.local_devices()`, or the devices given), so beyond x itself the
memory is a few chunks and one (D x D) sum per device, whatever P. Every chunk has the same shape (the last is
padded with zero inputs and zero labels, which add nothing: the path features of a zero input are zero), so one
executable serves every P. The per-device sums are added on the host in a fixed order.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from attnpaths._src.attention import ExampleBound, check_layers
from attnpaths._src.checks import as_count, as_float_array, as_labels
from attnpaths._src.paths import path_features
from attnpaths._src.routes import GramStatistics
from attnpaths._src.spec import NetworkSpec


@jax.jit
def _accumulate(gram, xty, yty, xi, y):
    return (gram + jnp.einsum("mip,mjq->piqj", xi, xi), xty + jnp.einsum("mip,m->pi", xi, y), yty + y @ y)


def gram_statistics(spec: NetworkSpec, attention: Sequence, x, y, chunk_size: int = 4096,
                    devices: Sequence | None = None) -> GramStatistics:
    """Accumulate the Gram route's statistics of a training set without ever holding all path features.

    Args:
      spec: the network (heads and token readout).
      attention: one entry per layer, as for `path_features` (heads objects, or arrays (P, H_l, T, T)).
      x: (P, N0, T) training inputs (a NumPy array or memory map; read chunk by chunk).
      y: (P,) labels.
      chunk_size: examples per chunk.
      devices: devices to spread the chunks over; default every local device (`jax.local_devices()`).

    Returns:
      GramStatistics; pass it to `solve_saddle` and `predict` in place of (xi, y).
    """
    chunk_size = as_count("chunk_size", chunk_size)
    if getattr(x, "ndim", None) != 3:
        x = as_float_array("x", x, ndim=3)
    P, n0, n_tokens = x.shape
    if P < 1:
        raise ValueError(f"x must hold at least one example; got shape {x.shape}")
    y = as_labels("y", y, P)
    devices = list(jax.local_devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices must name at least one device")
    layers = check_layers(attention, spec.heads, P, n0)
    # x = 0 gives zero path features whatever the attention, so a padded last chunk adds nothing; attention
    # given per example (ExampleBound) has no rows to pad with, so then the last chunk keeps its own size
    can_pad = not any(isinstance(layer, ExampleBound) for layer in layers)
    H = spec.n_paths
    sums = [jax.device_put((jnp.zeros((H, n0, H, n0)), jnp.zeros((H, n0)), jnp.zeros(())), dev)
            for dev in devices]
    chunk = min(chunk_size, P)
    for i, start in enumerate(range(0, P, chunk)):
        rows = slice(start, min(start + chunk, P))
        xc = as_float_array("x", x[rows], ndim=3)
        yc = y[rows]
        chunk_layers = [layer.take(rows) if isinstance(layer, ExampleBound) else layer for layer in layers]
        pad = chunk - xc.shape[0] if can_pad else 0
        if pad:
            xc = np.concatenate([xc, np.zeros((pad, n0, n_tokens))])
            yc = np.concatenate([yc, np.zeros(pad)])
        k = i % len(devices)
        with jax.default_device(devices[k]):
            xi = path_features(spec, chunk_layers, xc, chunk_size=xc.shape[0])
            sums[k] = _accumulate(*sums[k], xi, jax.device_put(yc, devices[k]))
    gram, xty, yty = (sum(np.asarray(s[j]) for s in sums) for j in range(3))
    return GramStatistics(jnp.asarray(gram), jnp.asarray(xty), jnp.asarray(yty),
                          jnp.asarray(float(P), dtype=jnp.float64))
