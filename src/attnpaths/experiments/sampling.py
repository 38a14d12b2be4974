"""Theory vs the real network's posterior on the Markov task (spec C.2; black dots of Fig. 2c/e).

For each sampled width the draws go to `OUT/samples/N{N}.npz` as they are made (atomic writes, resumable), and a
summary per width goes into `results.json` under "samples": the sampled accuracy, the sampled order parameter
U_1 with its standard error, the relative error of the sampled predictor mean against the theory's,
||mean_sampled - mean_theory|| / ||mean_theory||, next to its Monte Carlo floor sqrt(sum se^2) / ||mean_theory||,
and the worst split R-hat / smallest ESS over the test predictions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from attnpaths._src.predictor import accuracy, predict
from attnpaths._src.sampling.diagnostics import summarize
from attnpaths._src.sampling.gibbs import BlockedGibbs, gibbs_draws
from attnpaths._src.sampling.nuts import nuts_draws
from attnpaths.experiments.io import read_json, write_json_atomic
from attnpaths.experiments.markov import markov_setup

DEFAULT_SAMPLE_WIDTHS = (10.0, 100.0)


def _rebuild(results: dict):
    """Preset, data and path features of a saved Markov run, from its recorded inputs."""
    inp = results["inputs"]
    return markov_setup(inp["preset"], inp["n_train"], inp["n_test"], inp["temperature"])


def sample_width(pre, train, test, xi, xit, theory_row: dict, n_samples: int, n_chains: int, seed: int,
                 path: Path | None, resume: bool = False, method: str = "gibbs", n_warmup: int = 100,
                 progress: bool = True) -> dict:
    """Sample the posterior at one width and compare with the theory's predictor there."""
    spec = pre.spec.with_width(theory_row["N"])
    if method == "gibbs":
        sampler = BlockedGibbs(spec, pre.attention, train.x, train.y)
        draws = gibbs_draws(sampler, xit, n_samples, n_chains=n_chains, n_warmup=n_warmup, seed=seed, path=path,
                            resume=resume, save_every=max(1, n_samples // 20), progress=progress)
    elif method == "nuts":
        draws = nuts_draws(spec, xi, train.y, xit, n_warmup=n_warmup, n_draws=n_samples, n_chains=n_chains,
                           seed=seed, progress=progress)
    else:
        raise ValueError(f"method must be 'gibbs' or 'nuts'; got {method!r}")
    summary = summarize(draws)
    theory_mean = predict(spec, xi, train.y, xit, np.asarray(theory_row["U"][0])).mean
    norm = np.linalg.norm(theory_mean)
    return {
        "N": theory_row["N"], "method": method, "n_chains": summary.n_chains, "n_draws": summary.n_draws,
        "accuracy": accuracy(summary.mean, test.y),
        "theory_accuracy": theory_row["accuracy"],
        "relative_error_mean": float(np.linalg.norm(summary.mean - theory_mean) / norm),
        "monte_carlo_floor": float(np.sqrt(np.sum(summary.mean_se ** 2)) / norm),
        "U": summary.U, "U_se": summary.U_se,
        "max_rhat": float(np.nanmax(summary.rhat_mean)), "min_ess": float(np.nanmin(summary.ess_mean)),
        "median_iat_sweeps": float(np.nanmedian(summary.iat_mean)),
        "seconds": float(draws.seconds),
        "effective_samples_per_second": float(np.nanmedian(summary.ess_mean) / max(draws.seconds, 1e-12)),
    }


def add_samples_to_markov(results: dict, out: str | Path, n_samples: int = 400, n_chains: int = 4,
                          sample_widths: Sequence[float] | None = None, seed: int = 0, resume: bool = False,
                          method: str = "gibbs", n_warmup: int = 100, log=print) -> dict:
    """Sample the network's posterior at `sample_widths` (default 10 and 100) and add the comparison to
    `results` (written to OUT/results.json after every width). The warm-up is fixed (not tied to n_samples)
    so that a resumed run may ask for more draws."""
    widths = tuple(float(w) for w in (sample_widths or DEFAULT_SAMPLE_WIDTHS))
    theory = {float(t["N"]): t for t in results["theory"]}
    missing = [w for w in widths if w not in theory]
    if missing:
        raise ValueError(f"sample widths {missing} have no theory solution in this run (its widths: "
                         f"{sorted(theory)}); add them to --widths")
    pre, train, test, xi, xit = _rebuild(results)
    out = Path(out)
    done = {float(r["N"]): r for r in results.get("samples", [])}
    for N in widths:
        path = out / "samples" / f"{method}_N{N:g}.npz" if method == "gibbs" else None
        row = sample_width(pre, train, test, xi, xit, theory[N], n_samples, n_chains, seed, path,
                           resume=resume, method=method, n_warmup=n_warmup)
        done[N] = row
        results["samples"] = [done[k] for k in sorted(done)]
        write_json_atomic(out / "results.json", results)
        log(f"  samples N={N:g} ({method}, {n_chains}x{n_samples}): accuracy {100 * row['accuracy']:.1f}% "
            f"(theory {100 * row['theory_accuracy']:.1f}%), |mean - theory|/|theory| = "
            f"{row['relative_error_mean']:.3f} (Monte Carlo floor {row['monte_carlo_floor']:.3f}), "
            f"max R-hat {row['max_rhat']:.3f}, {row['seconds']:.1f} s")
    return results


def sample_saved_run(run: str | Path, n_samples: int = 400, n_chains: int = 4,
                     widths: Sequence[float] | None = None, seed: int = 0, resume: bool = False,
                     method: str = "gibbs", n_warmup: int = 100) -> dict:
    """`attnpaths sample RUN`: add posterior samples to a saved Markov run folder and redraw its figures."""
    from attnpaths.experiments.plots import markov_figures

    results = read_json(Path(run) / "results.json")
    if results.get("experiment") != "markov":
        raise ValueError(f"{run}/results.json is not a Markov run (experiment = {results.get('experiment')!r})")
    results = add_samples_to_markov(results, run, n_samples, n_chains, widths, seed, resume, method, n_warmup)
    markov_figures(results, run)
    return results
