"""One blocked Gibbs sweep at P = 1000 on the 4-path Markov task (as benchmarks/sampler.py part 2), piece by piece
against its flop count, old algorithm and new side by side in one run (issue 18 item 3).

  old   the sweep before issue 18 (`blocked_gibbs._legacy`): inputs pushed through every block (P S D per block),
        each conditional by P x P algebra (r x r when the data see r < P of the block's weights)
  new   the sweep as shipped: inputs carried as maps M of the fixed path features, conditionals from the path
        moments (factored.py), no P^2 or P^3 work where that route is the cheaper one

Part 1 prints the machine's dense float64 matmul GFLOP/s (1000^3, in this process) and, per piece of one sweep of
one chain (N = 1000), its seconds, its flop count (2 x multiply-adds) and GFLOP/s: the noise draws, each block's
Gram (old: Phi Phi^T or F^T F; new: the path-moment congruence incl. M^T M and its Cholesky), the Cholesky of the
conditional's matrix, the whole block update (Gram + Cholesky + matvecs) and the propagation to the next block.
Part 2 prints ms per sweep of one chain (2 chains vmapped, as the samplers run) for old and new, at N = 300 and
1000, the least over --rounds interleaved runs (the machine is shared: other processes only add time), and the
largest difference of the two chains' weights after the same sweeps (the same draws up to rounding).

    python benchmarks/gibbs_sweep.py            # ~5 min on 2 idle cores
    python benchmarks/gibbs_sweep.py --rounds 1 --widths 300
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

import attnpaths as ap
from attnpaths._src.sampling import BlockedGibbs
from attnpaths._src.sampling.blocked_gibbs import _legacy
from attnpaths._src.sampling.factored import block_dims, block_features, block_moments, factored_update
from attnpaths._src.sampling.gibbs import (LinearBlock, _block_update, _normal, block_gram, block_output,
                                           linear_blocks, reduced_rank)
from attnpaths._src.tasks.markov import markov_data, markov_network


def _best(fn, *args, rounds: int = 3) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return min(times)


def matmul_gflops(n: int = 1000) -> float:
    a = jnp.asarray(np.random.default_rng(0).normal(size=(n, n)))
    return 2 * n ** 3 / _best(jax.jit(lambda x: x @ x), a, rounds=5) / 1e9


def _setup(P: int = 1000):
    net = dataclasses.replace(markov_network("4paths"), n_train=P, n_test=10)
    train, _ = markov_data(net)
    return net.spec, ap.path_features(net.spec, net.attention, train.x), jnp.asarray(train.y)


def _input_maps(spec, weights, n0):
    """M of every block (None for V0), as factored_sweep carries them."""
    maps, M = [None], None
    blocks = [weights.V0[None], *weights.V]
    c = [1.0] + [1 / math.sqrt(w) for w in spec.widths[:-1]]
    for k, W in enumerate(blocks):
        H_b, _, R = block_dims(spec, k)
        WM = W if M is None else (W.reshape(-1, W.shape[2]) @ M).reshape(W.shape[:2] + (-1,))
        M = c[k] * jnp.transpose(WM.reshape(H_b, WM.shape[1], R, n0), (1, 2, 0, 3)).reshape(WM.shape[1], -1)
        maps.append(M)
    return maps


def pieces(spec, xi, y, g: BlockedGibbs, rounds: int) -> list[tuple]:
    """(piece, seconds, flops) of one sweep of one chain, old and new."""
    P, n0, _ = xi.shape
    T = spec.temperature
    w = jax.tree_util.tree_map(lambda a: a[0], g.init(0, 1).weights)
    blocks = linear_blocks(spec, w, xi)
    arrays = [w.V0[None], *w.V, w.a[None, None]]
    maps = _input_maps(spec, w, n0)
    rows = []
    n_noise = sum(W.size + P for W in arrays)
    t = _best(jax.jit(lambda k: _normal(k, n_noise, True)), jax.random.PRNGKey(0), rounds=rounds)
    rows.append(("noise", f"{n_noise / 1e6:.2f} M normals", t, math.nan))
    for k, (b, W) in enumerate(zip(blocks, arrays)):
        s = spec.variances[k]
        H_b, S, R = block_dims(spec, k)
        n_out, n_in = W.shape[1:]
        eps = jnp.zeros(P)
        # old
        r = reduced_rank(b)
        if k == 0 and g.C0 is not None:
            gram_f, n = 2 * S * S * P * P, P
        elif r < P:
            gram_f, n = 2 * P * r * r, r
        else:
            gram_f, n = 2 * P * P * H_b * S * n_in, P
        t = _best(jax.jit(block_gram), b, rounds=rounds) if n == P and not (k == 0 and g.C0 is not None) else None
        if t is not None:
            rows.append((f"old {k} Gram", f"P x P, P = {P}", t, gram_f))
        A = jnp.eye(n) * 2.0
        rows.append((f"old {k} Cholesky", f"n = {n}", _best(jax.jit(jnp.linalg.cholesky), A, rounds=rounds),
                     n ** 3 / 3))
        upd = jax.jit(lambda b, W0: _block_update(b, W0, eps, y, s, T, g.C0 if k == 0 else None, True))
        rows.append((f"old {k} update", "all of it", _best(upd, b, W, rounds=rounds), gram_f + n ** 3 / 3))
        if k <= spec.n_layers:
            rows.append((f"old {k} propagate", "P S D", _best(jax.jit(block_output), b, W, rounds=rounds),
                         2 * P * S * W.size))
        # new
        X, M = block_features(xi, (H_b, S, R)), maps[k]
        if g.route[k] == "q":
            Xi = block_moments(g.moments, (H_b, S, R))
            q_upd = jax.jit(lambda u, M, W0: factored_update(u, M, X, Xi, b.c, W0, eps, y, s, T))
            a = R * n0
            m = a if M is None or a < n_in else n_in
            s1 = min(S, n_out)
            flops = 2 * (H_b * s1) ** 2 * (m * a * a + m * m * a) if M is not None else 2 * (H_b * S * a) ** 2 * s1
            rows.append((f"new {k} update", f"q route, r = {H_b * s1 * m}", _best(q_upd, b.u, M, W,
                                                                                     rounds=rounds),
                         flops + (H_b * s1 * m) ** 3 / 3))
        else:
            def p_upd(u, M, W0):
                Z = X if M is None else (X.reshape(-1, M.shape[1]) @ M.T).reshape(X.shape[:3] + (-1,))
                return _block_update(LinearBlock(u, Z, b.c), W0, eps, y, s, T, g.C0 if k == 0 else None, True)

            z_f = 0 if M is None else 2 * P * H_b * S * n_in * M.shape[1]
            rows.append((f"new {k} update", "P route (Z = M X, then old)", _best(jax.jit(p_upd), b.u, M, W,
                                                                                rounds=rounds),
                         z_f + gram_f + n ** 3 / 3))
        if k <= spec.n_layers and k > 0:
            M = maps[k]
            prop = jax.jit(lambda W, M: (W.reshape(-1, W.shape[2]) @ M))
            rows.append((f"new {k} propagate", "H_b N_k+1 N_k R N0", _best(prop, W, M, rounds=rounds),
                         2 * W.size * M.shape[1]))
    return rows


def xla_gflop(g: BlockedGibbs) -> float:
    """XLA's own flop count of one sweep of one chain (compiled; LAPACK calls such as the Cholesky not counted)."""
    cost = jax.jit(g.step).lower(g.init(0, 1)).compile().cost_analysis()
    return (cost[0] if isinstance(cost, list) else cost)["flops"] / 1e9


def sweep_times(spec, xi, y, widths, rounds: int) -> list[dict]:
    """Wall and CPU (process) ms per sweep of one chain, least over interleaved rounds; XLA GFLOP per sweep."""
    out = []
    for N in widths:
        sp = spec.with_width(float(N))
        new = BlockedGibbs.from_features(sp, xi, y)
        old = _legacy(new)
        state = new.init(0, 2)
        row = dict(N=N, route=new.route)
        ends = {}
        for name, g in (("old", old), ("new", new)):
            row[name + "_gflop"] = xla_gflop(g)
            row[name], row[name + "_cpu"] = math.inf, math.inf
        for _ in range(rounds):
            for name, g in (("old", old), ("new", new)):
                jax.block_until_ready(g.advance(state, 1))  # compiled (n_sweeps is traced)
                t, c = time.perf_counter(), time.process_time()
                ends[name] = jax.block_until_ready(g.advance(state, 2))
                row[name] = min(row[name], 1e3 * (time.perf_counter() - t) / 4)
                row[name + "_cpu"] = min(row[name + "_cpu"], 1e3 * (time.process_time() - c) / 4)
        row["diff"] = max(float(jnp.max(jnp.abs(a - b)))
                          for a, b in zip(jax.tree_util.tree_leaves(ends["old"].weights),
                                          jax.tree_util.tree_leaves(ends["new"].weights)))
        out.append(row)
        print(f"  N = {N}: old {row['old']:.0f} ms, new {row['new']:.0f} ms", flush=True)
    return out


def main(widths=(300, 1000), rounds: int = 3, profile: bool = True, n_train: int = 1000):
    load0 = os.getloadavg()[0]
    gf = matmul_gflops()
    print(f"dense float64 matmul (1000^3, this process): {gf:.1f} GFLOP/s")
    spec, xi, y = _setup(n_train)
    if profile:
        sp = spec.with_width(1000.0)
        g = BlockedGibbs.from_features(sp, xi, y)
        print(f"\none sweep of one chain, P = {n_train}, N = 1000 (routes {g.route}; blocks V0, V1, V2, a)")
        print(f"{'piece':22s} {'what':26s} {'ms':>9s} {'GFLOP':>8s} {'GFLOP/s':>8s} {'x flop time':>11s}")
        for name, what, t, f in pieces(sp, xi, y, g, rounds):
            print(f"{name:22s} {what:26s} {1e3 * t:9.1f} {f / 1e9:8.2f} {f / t / 1e9:8.1f} {t / (f / gf / 1e9):11.1f}")
    print(f"\nms per sweep of one chain (2 chains vmapped), P = {n_train}:")
    rows = sweep_times(spec, xi, y, widths, rounds)
    print(f"{'N':>6s} {'routes':22s} {'old ms':>8s} {'new ms':>8s} {'x':>5s} {'old cpu':>8s} {'new cpu':>8s} "
          f"{'x':>5s} {'old GF':>7s} {'new GF':>7s} {'x':>5s} {'max |old - new|':>16s}")
    for r in rows:
        print(f"{r['N']:6d} {str(r['route']):22s} {r['old']:8.0f} {r['new']:8.0f} {r['old'] / r['new']:5.1f} "
              f"{r['old_cpu']:8.0f} {r['new_cpu']:8.0f} {r['old_cpu'] / r['new_cpu']:5.1f} {r['old_gflop']:7.2f} "
              f"{r['new_gflop']:7.2f} {r['old_gflop'] / r['new_gflop']:5.1f} {r['diff']:16.1e}")
    print("(ms: wall; cpu: process CPU ms, all threads; GF: XLA's flop count of the compiled sweep, LAPACK calls "
          "excluded)")
    print(f"\nload average (1 min) {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, on "
          f"{os.cpu_count()} cores")
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", type=int, nargs="+", default=[300, 1000])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved runs; the least time counts")
    parser.add_argument("--n-train", type=int, default=1000, help="P (default 1000)")
    parser.add_argument("--no-profile", dest="profile", action="store_false", help="only the sweep times")
    args = parser.parse_args()
    main(tuple(args.widths), args.rounds, args.profile, args.n_train)
