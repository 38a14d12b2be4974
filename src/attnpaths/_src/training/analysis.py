"""Analyses of a trained network (spec E.5c, E.7): path weights, U_GD, head importance, pruning."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from attnpaths._src.training.model import (Params, architecture_of, check_inputs, check_targets, gd_accuracy,
                                           head_gates, output_with_gates)


def path_readout_weights(params: Params) -> np.ndarray:
    """w_pi = a^T V_L[h_L] ... V_1[h_1], (H, N) float64 with H = prod H_l and the lower-layer head outermost
    (spec H.2).

    Without the 1/sqrt(H_l) factors: f(x) = prod_l H_l^-1/2 sum_pi w_pi . V0 x_pi with x_pi the path-aggregated
    input of `attnpaths.path_token_weights` (mean readout).
    """
    architecture_of(params)
    w = np.asarray(params.a, dtype=np.float64)[None, :]  # (1 path, N)
    for V in reversed(params.V):
        w = np.einsum("pi,hij->hpj", w, np.asarray(V, dtype=np.float64)).reshape(-1, w.shape[1])
    return w


def gd_order_parameter(params: Params) -> np.ndarray:
    """U_GD = w_pi . w_pi' (H, H), unnormalised, with w_pi = a^T V_L[h_L] ... V_1[h_1] (spec E.5c); paths
    flattened with the lower-layer head outermost (pi = h_1 H_2 + h_2 for L = 2)."""
    w = path_readout_weights(params)
    return w @ w.T


def _max_heads(params: Params) -> int:
    return max(np.shape(v)[0] for v in params.V)


def head_importance_gradient(params: Params, x, y, chunk_size: int = 512) -> np.ndarray:
    """Head importance of Michel et al. (2019): I_lh = sum_mu |d loss_mu / d g_lh| at g = 1, (L, H).

    loss_mu = (f(x_mu) - y_mu)^2 with head h of layer l multiplied by a gate g_lh (the H_l^-1/2 normalisation
    is kept fixed). For layers with fewer heads than H = max H_l the missing entries are NaN.
    """
    x = check_inputs(params, x)
    y = check_targets(y, x.shape[0])
    gates, scales = head_gates(params, None)

    def per_example(g, xc, yc):
        return (output_with_gates(params, xc, g, scales) - yc) ** 2

    jac = jax.jit(jax.jacfwd(per_example))
    total = [np.zeros(np.shape(g)) for g in gates]
    for i in range(0, x.shape[0], chunk_size):
        J = jac(gates, jnp.asarray(x[i:i + chunk_size]), jnp.asarray(y[i:i + chunk_size]))
        for l, j in enumerate(J):
            total[l] += np.abs(np.asarray(j, dtype=np.float64)).sum(axis=0)
    out = np.full((len(total), _max_heads(params)), np.nan)
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
    x = check_inputs(params, x)
    y = check_targets(y, x.shape[0])
    acc = np.full(len(order), np.nan)
    for k in range(len(order)):
        mask = head_mask_without(params, order[:k])
        if all(m.sum() > 0 for m in mask):
            acc[k] = gd_accuracy(params, x, y, mask)
    return acc


def single_head_drop_accuracy(params: Params, x, y) -> np.ndarray:
    """Accuracy after pruning each single head (L, H) (spec E.7, Fig. 3e); NaN for a layer's only head."""
    x = check_inputs(params, x)
    y = check_targets(y, x.shape[0])
    out = np.full((len(params.V), _max_heads(params)), np.nan)
    for l, V in enumerate(params.V):
        for h in range(np.shape(V)[0]):
            mask = head_mask_without(params, [(l, h)])
            if mask[l].sum() > 0:
                out[l, h] = gd_accuracy(params, x, y, mask)
    return out
