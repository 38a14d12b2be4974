"""Blocked Gibbs vs NumPyro NUTS on the weight posterior of the 4-path Markov task (spec C.2, D.3).

P = 100 training and 1000 test sequences, T = 0.01, variances 1, readout 'last'. For every width: the theory
(`solve_saddle` + `predict`), then each sampler. Columns:

  ESS        median over the 1000 test points of the effective sample size of f(x_test) (numpyro, all chains)
  ESS/s      ESS / sampling seconds (warm-up included; Gibbs excludes compilation; for NUTS the compilation,
             measured by a 1 + 1 draw run, is subtracted and shown separately)
  IAT        median integrated autocorrelation time of f(x_test), in sweeps (Gibbs) or NUTS transitions
  R-hat      worst split R-hat over the test points
  rel.err    ||mean_sampled - mean_theory|| / ||mean_theory||, next to its Monte Carlo floor
             sqrt(sum se^2) / ||mean_theory||: an error near the floor is sampling noise.

NUTS uses the authors' settings (100 warm-up, 100 draws, 1 chain, default NUTS, seed 1). Gibbs: 4 chains; at
N = 1000 only Gibbs runs (2 chains).

    python benchmarks/sampler.py           # N = 10, 100 (both samplers) and 1000 (Gibbs): ~10 min on 2 cores
    python benchmarks/sampler.py --quick   # N = 10 and 100, fewer draws, no N = 1000
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import attnpaths as ap
from attnpaths._src.sampling import BlockedGibbs, gibbs_draws, nuts_draws, summarize
from attnpaths._src.tasks.markov import markov_data, markov_preset


def _row(name, N, draws, theory_mean, extra_seconds=0.0):
    s = summarize(draws)
    norm = np.linalg.norm(theory_mean)
    ess = float(np.nanmedian(s.ess_mean))
    return dict(sampler=name, N=N, size=f"{s.n_chains}x{s.n_draws}", seconds=draws.seconds - extra_seconds,
                compile=extra_seconds, ess=ess, ess_per_s=ess / max(draws.seconds - extra_seconds, 1e-9),
                iat=float(np.nanmedian(s.iat_mean)), rhat=float(np.nanmax(s.rhat_mean)),
                rel=float(np.linalg.norm(s.mean - theory_mean) / norm),
                floor=float(np.sqrt(np.sum(s.mean_se ** 2)) / norm))


def main(quick: bool = False) -> list[dict]:
    warnings.filterwarnings("ignore", message=".*There are not enough devices.*")
    pre = markov_preset("4paths")
    train, test = markov_data(pre)
    xi = ap.path_features(pre.spec, pre.attention, train.x)
    xit = ap.path_features(pre.spec, pre.attention, test.x)
    plan = [(10.0, True, 4, 1000 if quick else 2000), (100.0, True, 4, 300 if quick else 1000)]
    if not quick:
        plan.append((1000.0, False, 2, 200))
    rows = []
    for N, with_nuts, chains, n_gibbs in plan:
        spec = pre.spec.with_width(N)
        t0 = time.perf_counter()
        U1 = ap.solve_saddle(spec, xi, train.y).U[0]
        theory = np.asarray(ap.predict(spec, xi, train.y, xit, U1).mean)
        print(f"N = {N:g}: theory {time.perf_counter() - t0:.1f} s", flush=True)
        gibbs = BlockedGibbs.from_features(spec, xi, train.y)
        draws = gibbs_draws(gibbs, xit, n_gibbs, n_chains=chains, n_warmup=max(n_gibbs // 10, 20), seed=0,
                            progress=False)
        rows.append(_row("Gibbs", N, draws, theory))
        print(f"  Gibbs done: {draws.seconds:.1f} s", flush=True)
        if with_nuts:
            n_nuts = 30 if quick and N >= 100 else 100
            t0 = time.perf_counter()
            nuts_draws(spec, xi, train.y, xit, n_warmup=1, n_draws=1, n_chains=1, seed=1, progress=False)
            overhead = time.perf_counter() - t0
            draws = nuts_draws(spec, xi, train.y, xit, n_warmup=n_nuts, n_draws=n_nuts, n_chains=1, seed=1,
                               progress=False)
            rows.append(_row("NUTS", N, draws, theory, extra_seconds=overhead))
            print(f"  NUTS done: {draws.seconds:.1f} s (compile ~{overhead:.1f} s)", flush=True)
    print()
    head = (f"{'sampler':8s} {'N':>6s} {'chains x draws':>15s} {'seconds':>8s} {'compile':>8s} {'ESS':>7s} "
            f"{'ESS/s':>8s} {'IAT':>6s} {'R-hat':>6s} {'rel.err':>8s} {'MC floor':>8s}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['sampler']:8s} {r['N']:6g} {r['size']:>15s} {r['seconds']:8.1f} {r['compile']:8.1f} "
              f"{r['ess']:7.0f} {r['ess_per_s']:8.2f} {r['iat']:6.1f} {r['rhat']:6.3f} {r['rel']:8.3f} "
              f"{r['floor']:8.3f}")
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer draws, no N = 1000")
    main(parser.parse_args().quick)
