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

from attnpaths._src.checks import as_float_array, as_labels
from attnpaths._src.paths import path_features
from attnpaths._src.routes import GramStatistics
from attnpaths._src.spec import NetworkSpec


@jax.jit
def _accumulate(gram, xty, yty, xi, y):
    return (gram + jnp.einsum("mip,mjq->piqj", xi, xi), xty + jnp.einsum("mip,m->pi", xi, y), yty + y @ y)


def _check_chunk_size(chunk_size) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an int >= 1; got {chunk_size!r}")
    return int(chunk_size)


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
    chunk_size = _check_chunk_size(chunk_size)
    if getattr(x, "ndim", None) != 3:
        x = as_float_array("x", x, ndim=3)
    P, n0, n_tokens = x.shape
    if P < 1:
        raise ValueError(f"x must hold at least one example; got shape {x.shape}")
    y = as_labels("y", y, P)
    devices = list(jax.local_devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices must name at least one device")
    H = spec.n_paths
    arrays = [layer if callable(layer) else None for layer in attention]
    sums = []
    for k, dev in enumerate(devices):
        zeros = jax.device_put((jnp.zeros((H, n0, H, n0)), jnp.zeros((H, n0)), jnp.zeros(())), dev)
        sums.append(zeros)
    chunk = min(chunk_size, P)
    for i, start in enumerate(range(0, P, chunk)):
        stop = min(start + chunk, P)
        xc = as_float_array("x", x[start:stop], ndim=3)
        yc = y[start:stop]
        layers = [layer if a is not None else np.asarray(layer[start:stop]) for layer, a in zip(attention, arrays)]
        pad = chunk - (stop - start)
        if pad:
            xc = np.concatenate([xc, np.zeros((pad, n0, n_tokens))])
            yc = np.concatenate([yc, np.zeros(pad)])
            layers = [a if callable(a) else np.concatenate([a, np.full((pad,) + a.shape[1:], 1.0 / n_tokens)])
                      for a in layers]
        dev = devices[i % len(devices)]
        with jax.default_device(dev):
            xi = path_features(spec, layers, xc, chunk_size=chunk)
            sums[i % len(devices)] = _accumulate(*sums[i % len(devices)], xi, jax.device_put(yc, dev))
    gram, xty, yty = (sum(np.asarray(s[j]) for s in sums) for j in range(3))
    return GramStatistics(jnp.asarray(gram), jnp.asarray(xty), jnp.asarray(yty),
                          jnp.asarray(float(P), dtype=jnp.float64))
