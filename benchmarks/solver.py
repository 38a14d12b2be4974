"""Newton solver vs the research code's first-order Adam on the same action (spec C.1).

Adam baseline: full matrices U_l as free parameters, symmetrised inside the action, GP initialisation, optax.adam
(lr 0.1), stop at max |dS/dU| < 1e-5 or 50 000 steps (or a wall-time cap), run as a jitted `lax.while_loop` in
blocks of 50 steps (the fastest form of the baseline). Newton: `solve_saddle`, tol 1e-8, GP initialisation
(and, for the sweep, warm starts). Timings exclude compilation (every function is run once before timing).

    python benchmarks/solver.py            # all three cases
    python benchmarks/solver.py --quick    # smaller caps
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import attnpaths as ap
from attnpaths._src.order import symmetrize
from attnpaths._src.tasks.markov import markov_data, markov_layer, markov_network


def adam_baseline(spec, xi, y, lr=0.1, tol=1e-5, max_steps=50_000, max_seconds=300.0, block=50):
    hyper, heads = spec.hyper(), spec.heads
    y = jnp.asarray(y)

    def S(Us):
        return ap.action([symmetrize(U) for U in Us], xi, y, hyper, heads)

    opt = optax.adam(lr)
    value_and_grad = jax.value_and_grad(S)

    @jax.jit
    def run_block(Us, state, step):
        def cond(c):
            return (c[3] < block) & (c[4] >= tol)

        def body(c):
            Us, state, step, k, _, _ = c
            val, g = value_and_grad(Us)
            gmax = jnp.max(jnp.stack([jnp.max(jnp.abs(gi)) for gi in g]))
            updates, state = opt.update(g, state)
            new = optax.apply_updates(Us, updates)
            done = gmax < tol  # keep the point at which the gradient was measured
            new = jax.tree.map(lambda a, b: jnp.where(done, a, b), Us, new)
            return new, state, step + jnp.where(done, 0, 1), k + 1, gmax, val

        return jax.lax.while_loop(cond, body, (Us, state, step, 0, jnp.inf, jnp.inf))

    Us = [jnp.asarray(U) for U in ap.gp_order(spec)]
    state = opt.init(Us)
    run_block(Us, state, 0)  # compile
    t0 = time.perf_counter()
    step, gmax, val = 0, np.inf, np.inf
    while step < max_steps and gmax >= tol and time.perf_counter() - t0 < max_seconds:
        Us, state, step, _, gmax, val = run_block(Us, state, step)
        step, gmax, val = int(step), float(gmax), float(val)
        if not np.isfinite(val):
            break
    return dict(iterations=step, seconds=time.perf_counter() - t0, action=val, grad_max=gmax,
                converged=gmax < tol)


def newton(spec, xi, y, init=None):
    ap.solve_saddle(spec, xi, y, init=init)  # compile (and identical work: timed below)
    t0 = time.perf_counter()
    s = ap.solve_saddle(spec, xi, y, init=init)
    return dict(iterations=s.iterations, seconds=time.perf_counter() - t0, action=s.action,
                grad_max=s.grad_max, converged=s.converged, saddle=s)


def row(case, method, r):
    return (f"| {case:<26} | {method:<14} | {r['iterations']:>7} | {r['seconds']:>9.3f} | {r['action']:>14.8f} "
            f"| {r['grad_max']:>9.1e} | {'yes' if r['converged'] else 'NO':>4} |")


HEADER = ("| case                       | method         |   iters |  wall (s) |    final action | max|grad| | conv |\n"
          "|----------------------------|----------------|---------|-----------|-----------------|-----------|------|")


def main(quick=False):
    cap = 60.0 if quick else 300.0
    print(f"devices: {jax.devices()}; float64: {jnp.zeros(1).dtype == jnp.float64}")
    print(HEADER)

    # (i) 4-path Markov task at the paper's 7 widths
    net = markov_network("4paths")
    train, _ = markov_data(net)
    xi = ap.path_features(net.spec, net.attention, train.x)
    tot = {"adam": 0.0, "newton": 0.0, "newton_warm": 0.0}
    worse = 0
    init = None
    for N in sorted(net.widths, reverse=True):
        spec = net.spec.with_width(N)
        a = adam_baseline(spec, xi, train.y, max_seconds=cap)
        n = newton(spec, xi, train.y)
        w = newton(spec, xi, train.y, init=init)
        init = w["saddle"].U
        tot["adam"] += a["seconds"]
        tot["newton"] += n["seconds"]
        tot["newton_warm"] += w["seconds"]
        worse += n["action"] > a["action"] + 1e-9
        print(row(f"markov 4 paths N={N:g}", "adam lr 0.1", a))
        print(row(f"markov 4 paths N={N:g}", "newton (GP)", n))
        print(row(f"markov 4 paths N={N:g}", "newton (warm)", w))
    print(f"\n7-width sweep: Adam {tot['adam']:.2f} s, Newton from GP {tot['newton']:.3f} s "
          f"({tot['adam'] / tot['newton']:.0f}x), Newton warm-started sweep {tot['newton_warm']:.3f} s "
          f"({tot['adam'] / tot['newton_warm']:.0f}x); widths where Newton's action is higher than Adam's: {worse}\n")

    print(HEADER)
    # (ii) P = 1000
    big = dataclasses.replace(net, n_train=1000)
    train_big, _ = markov_data(big)
    xi_big = ap.path_features(net.spec, net.attention, train_big.x)
    spec = net.spec.with_width(100)
    print(row("markov 4 paths P=1000 N=100", "newton (GP)", newton(spec, xi_big, train_big.y)))
    print(row("markov 4 paths P=1000 N=100", "adam lr 0.1", adam_baseline(spec, xi_big, train_big.y,
                                                                          max_seconds=cap)))

    # (iii) 2 layers x 4 heads = 16 paths on the Markov data
    cfg = net.config
    layer1 = markov_layer([("same_token", 0.0, 0)] + [("blank", 1.0, s) for s in (147, 148, 149)], cfg, 10.0)
    layer2 = markov_layer([("uniform", 0.0, 0)] + [("blank", 1.0, s) for s in (247, 248, 249)], cfg, 10.0)
    spec16 = net.spec.replace(heads=(4, 4), widths=10.0)
    xi16 = ap.path_features(spec16, [layer1, layer2], train.x)
    print(row("2x4 heads (16 paths) N=10", "newton (GP)", newton(spec16, xi16, train.y)))
    print(row("2x4 heads (16 paths) N=10", "adam lr 0.1", adam_baseline(spec16, xi16, train.y,
                                                                        max_seconds=cap)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    main(parser.parse_args().quick)
