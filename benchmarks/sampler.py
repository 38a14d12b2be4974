"""Blocked Gibbs vs NumPyro NUTS on the weight posterior of the 4-path Markov task (spec C.2, D.3), and Gibbs at
P = 1000. One table, every ratio measured in the same run.

Part 1: P = 100 training and 1000 test sequences, T = 0.01, variances 1, readout 'last', N = 10 and 100.
  Gibbs        the sampler as shipped (each block by its cheapest exact route: path moments, r x r or P x P
               algebra, see factored.py), 16 chains vectorised in one program
  Gibbs P x P  the same chain with every block by P x P algebra (`reduce=False`)
  NUTS         the authors' settings (100 warm-up, 100 draws, 1 chain, default NUTS, seed 1)
Part 2: P = 1000 training sequences (same task), N = 300 and 1000: Gibbs only, 2 chains, few draws (the sweep
piece by piece, old algorithm against new: benchmarks/gibbs_sweep.py).

Columns:
  ms/sweep   wall ms per step of one chain (Gibbs sweep, NUTS transition), warm-up included
  ESS        median over the test points of the effective sample size of f(x_test) (numpyro, all chains)
  ESS/s      ESS / sampling seconds (warm-up included, compilation excluded for every sampler); at N = 10 the
             seconds are the least of --rounds identical runs (same seed, same draws), against the load
  x NUTS     ESS/s over NUTS's ESS/s at the same N (same run)
  IAT        median integrated autocorrelation time of f(x_test), in sweeps or NUTS transitions
  R-hat      worst split R-hat over the test points
  rel.err    ||mean_sampled - mean_theory|| / ||mean_theory|| next to its Monte Carlo floor
             sqrt(sum se^2) / ||mean_theory||: an error near the floor is sampling noise.

The machine is shared: CPU timings are noisy, so compare ratios within one run; the load average is printed.

    python benchmarks/sampler.py           # all of it (~15 min on 2 idle cores)
    python benchmarks/sampler.py --quick   # part 1 with fewer draws, part 2 at N = 300 only
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import warnings

import numpy as np

import attnpaths as ap
from attnpaths._src.sampling import BlockedGibbs, NUTSSampler, run_sampler, summarize
from attnpaths._src.tasks.markov import markov_data, markov_network


def _setup(n_train: int, n_test: int = 1000):
    net = dataclasses.replace(markov_network("4paths"), n_train=n_train, n_test=n_test)
    train, test = markov_data(net)
    xi = ap.path_features(net.spec, net.attention, train.x)
    xit = ap.path_features(net.spec, net.attention, test.x)
    return net, train, xi, xit


def _row(name, N, P, draws, theory_mean, steps):
    s = summarize(draws)
    ess = float(np.nanmedian(s.ess_mean))
    row = dict(sampler=name, N=N, P=P, size=f"{s.n_chains}x{s.n_draws}", seconds=draws.seconds,
               ms=1e3 * draws.seconds / (steps * s.n_chains), ess=ess, ess_per_s=ess / max(draws.seconds, 1e-9),
               iat=float(np.nanmedian(s.iat_mean)), rhat=float(np.nanmax(s.rhat_mean)), rel=np.nan, floor=np.nan)
    if theory_mean is not None:
        norm = np.linalg.norm(theory_mean)
        row.update(rel=float(np.linalg.norm(s.mean - theory_mean) / norm),
                   floor=float(np.sqrt(np.sum(s.mean_se ** 2)) / norm))
    return row


def _theory(spec, xi, y, xit):
    U1 = ap.solve_saddle(spec, xi, y).U[0]
    return np.asarray(ap.predict(spec, xi, y, xit, U1).mean)


def _best_of(rounds: int, run):
    """The draws of the first run and the least sampling seconds over `rounds` identical runs (same seed, same
    numbers): other processes on a shared machine only ever add time."""
    draws = run()
    seconds = min([draws.seconds] + [run().seconds for _ in range(rounds - 1)])
    return draws._replace(seconds=seconds)


def part1(quick: bool, rounds: int) -> list[dict]:
    net, train, xi, xit = _setup(100)
    rows = []
    for N, n_gibbs in ((10.0, 300 if quick else 700), (100.0, 100 if quick else 250)):
        spec = net.spec.with_width(N)
        theory = _theory(spec, xi, train.y, xit)
        warm = 50
        n_nuts = 30 if quick and N >= 100 else 100
        runs = {
            "Gibbs": (BlockedGibbs.from_features(spec, xi, train.y), n_gibbs, 16, warm, 0),
            "Gibbs P x P": (BlockedGibbs.from_features(spec, xi, train.y, reduce=False), n_gibbs, 16, warm, 0),
            "NUTS": (NUTSSampler(spec, xi, train.y), n_nuts, 1, n_nuts, 1),
        }
        by = {}
        for name, (sampler, n, chains, n_warm, seed) in runs.items():
            d = _best_of(rounds if N == 10 else 1, lambda: run_sampler(sampler, xit, n, n_chains=chains,
                                                                        n_warmup=n_warm, seed=seed,
                                                                        progress=False))
            by[name] = _row(name, N, 100, d, theory, n_warm + n)
            print(f"  N = {N:g}: {name} {d.seconds:.1f} s", flush=True)
        for r in by.values():
            r["x_nuts"] = r["ess_per_s"] / by["NUTS"]["ess_per_s"]
            rows.append(r)
    return rows


def part2(quick: bool) -> list[dict]:
    net, train, xi, xit = _setup(1000, 200)
    rows = []
    for N, n_draws in ((300.0, 40), (1000.0, 20))[:1 if quick else 2]:
        spec = net.spec.with_width(N)
        g = BlockedGibbs.from_features(spec, xi, train.y)
        d = run_sampler(g, xit, n_draws, n_chains=2, n_warmup=5, seed=0, progress=False)
        r = _row("Gibbs", N, 1000, d, None, 5 + n_draws)
        r["x_nuts"] = np.nan
        rows.append(r)
        print(f"  N = {N:g}, P = 1000: Gibbs {d.seconds:.1f} s", flush=True)
    return rows


def main(quick: bool = False, rounds: int = 3) -> list[dict]:
    warnings.filterwarnings("ignore", message=".*There are not enough devices.*")
    load0 = os.getloadavg()[0]
    rows = part1(quick, rounds) + part2(quick)
    load1 = os.getloadavg()[0]
    print()
    head = (f"{'sampler':12s} {'N':>5s} {'P':>5s} {'chains x draws':>14s} {'ms/sweep':>9s} {'ESS':>7s} "
            f"{'ESS/s':>9s} {'x NUTS':>7s} {'IAT':>6s} {'R-hat':>6s} {'rel.err':>8s} {'MC floor':>8s}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['sampler']:12s} {r['N']:5g} {r['P']:5d} {r['size']:>14s} {r['ms']:9.3f} {r['ess']:7.0f} "
              f"{r['ess_per_s']:9.2f} {r['x_nuts']:7.1f} {r['iat']:6.2f} {r['rhat']:6.3f} {r['rel']:8.3f} "
              f"{r['floor']:8.3f}")
    print(f"\nload average (1 min) {load0:.1f} at the start, {load1:.1f} at the end, on {os.cpu_count()} cores")
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer draws; P = 1000 at N = 300 only")
    parser.add_argument("--rounds", type=int, default=3,
                        help="identical runs per sampler at N = 10; the least time counts (default: 3)")
    args = parser.parse_args()
    main(args.quick, args.rounds)
