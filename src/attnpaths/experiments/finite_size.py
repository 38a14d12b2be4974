"""`attnpaths finite-size`: theory vs posterior samples of the real network as N grows at fixed load alpha = P/N.

The theory is exact in the limit N, P -> infinity at fixed alpha. For each alpha and N (P = alpha N) and several
independent training sets (draws), a sweep cell solves the theory and samples the network's weight posterior
with the exact blocked Gibbs sampler (draws streamed to OUT/samples/, resumable, time-boxed per cell), and stores

    e_f = |mean_sampled - mean_theory| / |mean_theory|   (predictor mean over the test set)
    e_U = |U_sampled - U_theory|_F / |U_theory|_F          (path-path order parameter)

each next to its Monte Carlo floor, the same norm of the standard errors of the sampled quantity (what e would be
if the theory were exact). An error at the floor is no evidence of a theory error. Besides the raw errors the
table gives the floor-corrected error sqrt(max(<e^2> - <floor^2>, 0)) (the Monte Carlo part of e^2 is
floor^2 on average).

The N-scaling exponent b of e ~ N^b is the least-squares slope of log(mean e over draws) against log N; its
interval is the percentile interval of the slope over bootstrap resamples of the draws (at every N the draws
are resampled with replacement).

The run is two stages on the experiment `Runner`: `sweep` (the cells on Dask; its output is the store
OUT/sweep.zarr, resumable cell by cell, the draws in OUT/samples/) and `table` (the store reduced to the table and
the exponents). OUT/results.json, OUT/finite_size.csv (the table) and OUT/finite_size.nc (the table over alpha x
N, with CF attributes) are written from the stage records by `write_finite_size`; the figure OUT/finite_size.png
is drawn from the results alone (`finite_size_figures`, the experiment's figures).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from attnpaths._src.registry import Registry
from attnpaths._src.sampling.diagnostics import convergence_warning
from attnpaths._src.tasks.markov import MARKOV_NETWORKS
from attnpaths.experiments.base import EXPERIMENTS, Experiment
from attnpaths.experiments.io import write_csv_atomic, write_json_atomic
from attnpaths.experiments.runner import Runner
from attnpaths.experiments.sampling import NO_POSTERIOR, NoPosterior
from attnpaths.experiments.settings import (Settings, at_least, between, each, positive, register_preset,
                                            setting)
from attnpaths.experiments.sweep.command import StoredSweep, sweep_stage
from attnpaths.experiments.sweep.grid import Grid

ERRORS = (("relative_error_mean", "monte_carlo_floor_mean", "predictor mean"),
          ("relative_error_U", "monte_carlo_floor_U", "order parameter U"))


@dataclass(frozen=True)
class FiniteSizeSettings(Settings):
    """The finite-size study: grid, sampling budget, statistics, and where it runs."""

    network: str = setting("4paths", "Markov network", choices=MARKOV_NETWORKS)
    alphas: tuple[float, ...] = setting((0.5, 2.0), "loads alpha = P / N", check=each(positive))
    widths: tuple[float, ...] = setting((10.0, 30.0, 100.0, 300.0, 1000.0), "widths N (P = alpha N)",
                                        check=each(positive))
    temperature: float = setting(0.01, "temperature T", check=positive)
    draws: int = setting(3, "independent training sets (train seeds first_seed, first_seed + 1, ...)",
                         check=at_least(2))
    first_seed: int = setting(1, "train seed of the first draw", check=at_least(0))
    n_test: int = setting(200, "test sequences (the predictor mean is compared on them)", check=at_least(2))
    n_samples: int = setting(200, "most posterior draws per chain (the time box may stop a cell earlier)",
                             check=at_least(4))
    n_chains: int = setting(2, "independent Gibbs chains per cell", check=at_least(1))
    n_warmup: int = setting(10, "Gibbs sweeps discarded before the first draw (the chains mix in a few sweeps "
                            "at large N: IAT ~ 1)", check=at_least(0))
    sample_seed: int = setting(0, "seed of the chains", check=at_least(0))
    time_budget: float | None = setting(600.0, "seconds of sampling per cell; the draws made by then are kept "
                                        "(none: no limit)", check=positive)
    n_bootstrap: int = setting(2000, "bootstrap resamples of the draws for the exponents' intervals",
                               check=at_least(100))
    confidence: float = setting(0.95, "level of the intervals", check=between(0, 1))
    scheduler: str | None = setting(None, "address of a running Dask scheduler (none: a LocalCluster)",
                                    identity=False)
    workers: int | None = setting(None, "LocalCluster worker processes, one thread each (none: one per core)",
                                  check=at_least(1), identity=False)
    progress: bool = setting(True, "show a progress bar over the sweep's cells on stderr", identity=False)


def finite_size_grid(s: FiniteSizeSettings) -> Grid:
    """alpha x N x train seed on the Markov task, with Gibbs samples in every cell."""
    return Grid.from_dict({
        "task": "markov",
        "settings": {"network": s.network, "n_test": s.n_test, "temperature": s.temperature},
        "axes": {"alpha": list(s.alphas), "N": list(s.widths),
                 "train_seed": list(range(s.first_seed, s.first_seed + s.draws))},
        "sampling": {"method": "gibbs", "n_samples": s.n_samples, "n_chains": s.n_chains, "n_warmup": s.n_warmup,
                     "seed": s.sample_seed, "time_budget": s.time_budget}}, "finite-size study")


def scaling_exponent(N, errors, n_bootstrap: int, confidence: float, seed: int = 0) -> dict:
    """Slope b of log(mean over draws of e) vs log N, with a bootstrap interval over draws.

    Args:
      N: (n_N,) widths; errors: (n_N, n_draws) errors (NaN: missing draw).
    Returns:
      {"exponent": b, "low": ..., "high": ...}; NaN where fewer than 2 widths have data.
    """
    N, errors = np.asarray(N, dtype=float), np.asarray(errors, dtype=float)
    keep = np.array([np.isfinite(e).any() and np.nanmean(e) > 0 for e in errors])
    if keep.sum() < 2:
        return {"exponent": float("nan"), "low": float("nan"), "high": float("nan")}
    x, E = np.log(N[keep]), errors[keep]

    def slope(means):
        return float(np.polyfit(x, np.log(means), 1)[0])

    rng = np.random.default_rng(seed)
    reps = []
    for _ in range(n_bootstrap):
        means = []
        for e in E:
            e = e[np.isfinite(e)]
            means.append(np.mean(rng.choice(e, size=e.size, replace=True)))
        if np.all(np.asarray(means) > 0):
            reps.append(slope(np.asarray(means)))
    q = (1 - confidence) / 2
    return {"exponent": slope(np.array([np.nanmean(e) for e in E])), "low": float(np.quantile(reps, q)),
            "high": float(np.quantile(reps, 1 - q))}


def finite_size_table(ds, s: FiniteSizeSettings) -> dict:
    """Rows (alpha, N): mean errors and floors over draws (with their standard errors), floor-corrected errors,
    diagnostics; and per alpha (keyed by str(alpha), as in results.json) the fitted exponents of the raw errors
    (and of the floor-corrected ones).

    A point whose cells all failed has NaN entries (and says so in its `draws` count): NumPy's warnings about the
    empty means would only repeat that, once per variable."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _table(ds, s)


def _table(ds, s: FiniteSizeSettings) -> dict:
    ok = (ds.done & (ds.error == "")).values
    rows, exponents = [], {}
    for i, alpha in enumerate(ds.alpha.values):
        exponents[str(float(alpha))] = {}
        for err_name, floor_name, label in ERRORS:
            E = np.where(ok[i], ds[err_name].values[i], np.nan)
            F = np.where(ok[i], ds[floor_name].values[i], np.nan)
            corrected = np.sqrt(np.clip(np.nanmean(E ** 2, axis=1) - np.nanmean(F ** 2, axis=1), 0, None))
            exponents[str(float(alpha))][label] = {
                "raw": scaling_exponent(ds.N.values, E, s.n_bootstrap, s.confidence),
                "floor": scaling_exponent(ds.N.values, F, s.n_bootstrap, s.confidence),
                "widths_above_2x_floor": [float(n) for n, e, f in zip(ds.N.values, np.nanmean(E, 1),
                                                                       np.nanmean(F, 1)) if e > 2 * f]}
            for j, N in enumerate(ds.N.values):
                if len(rows) <= i * len(ds.N) + j:
                    rows.append({"alpha": float(alpha), "N": float(N), "P": float(np.nanmax(ds.P.values[i, j])),
                                 "draws": int(ok[i, j].sum()),
                                 "n_draws": float(np.nanmean(ds.n_draws.values[i, j])),
                                 "max_rhat": float(np.nanmax(ds.max_rhat.values[i, j])),
                                 "min_ess": float(np.nanmin(ds.min_ess.values[i, j])),
                                 "sample_seconds": float(np.nanmean(ds.sample_seconds.values[i, j]))})
                e, f = E[j][np.isfinite(E[j])], F[j][np.isfinite(F[j])]
                key = "mean" if label == "predictor mean" else "U"
                rows[i * len(ds.N) + j].update({
                    f"error_{key}": float(np.mean(e)) if e.size else float("nan"),
                    f"error_{key}_se": float(np.std(e, ddof=1) / np.sqrt(e.size)) if e.size > 1 else float("nan"),
                    f"floor_{key}": float(np.mean(f)) if f.size else float("nan"),
                    f"corrected_{key}": float(corrected[j])})
    return {"rows": rows, "exponents": exponents}


_ERROR_OF = {"mean": "the predictor mean", "U": "the order parameter U"}
LABELS = {"alpha": ("load alpha = P / N", "1"), "N": ("width N", "1"), "P": ("training examples P", "1"),
          "draws": ("finished draws (training sets)", "1"), "n_draws": ("posterior draws per cell (chains x draws)",
                                                                         "1"),
          "max_rhat": ("worst split R-hat over the draws' cells", "1"),
          "min_ess": ("smallest effective sample size over the draws' cells", "1"),
          "sample_seconds": ("wall time of the sampling, mean over draws", "s"),
          **{k: v for key, what in _ERROR_OF.items() for k, v in (
              (f"error_{key}", (f"relative error of {what}, |sampled - theory| / |theory|, mean over draws", "1")),
              (f"error_{key}_se", (f"standard error of the relative error of {what}", "1")),
              (f"floor_{key}", (f"Monte Carlo floor of the relative error of {what}, mean over draws", "1")),
              (f"corrected_{key}", (f"floor-corrected relative error of {what}", "1")))}}


def table_dataset(rows: list[dict]):
    """The table's rows as an xarray Dataset over (alpha, N) with CF long_name and units (`LABELS`)."""
    import pandas as pd

    from attnpaths.experiments.cf import label

    return label(pd.DataFrame(rows).set_index(["alpha", "N"]).to_xarray(), LABELS)


def finite_size_figures(results: dict, out) -> list[Path]:
    """finite_size.png from the results' table rows: errors (points: mean over draws, bars: se) and Monte Carlo
    floors (dashed) vs N, per alpha."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["rows"]
    alphas = sorted({r["alpha"] for r in rows})
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (key, label) in zip(axes, (("mean", "predictor mean"), ("U", "order parameter U"))):
        for k, alpha in enumerate(alphas):
            r = [x for x in rows if x["alpha"] == alpha]
            N = np.array([x["N"] for x in r])
            color = f"C{k}"
            ax.errorbar(N, [x[f"error_{key}"] for x in r], yerr=[x[f"error_{key}_se"] for x in r], fmt="o-",
                        color=color, label=rf"$\alpha$ = {alpha:g}: |sampled $-$ theory| / |theory|")
            ax.plot(N, [x[f"floor_{key}"] for x in r], "--", color=color, label=rf"$\alpha$ = {alpha:g}: Monte "
                    "Carlo floor")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("width N (P = alpha N)")
        ax.set_title(f"relative error of the {label}", fontsize=10)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(out) / "finite_size.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


@dataclass(frozen=True)
class FiniteSizeTable:
    """The store reduced (`finite_size_table`): one row per (alpha, N), and the exponents per alpha."""

    rows: list
    exponents: dict


def table_stage(sweep: StoredSweep, out, s: FiniteSizeSettings) -> FiniteSizeTable:
    """The stage after the sweep: its store (OUT/<sweep.store>) reduced to the table."""
    from attnpaths.experiments.sweep.store import open_sweep

    table = finite_size_table(open_sweep(Path(out)).load(), s)
    return FiniteSizeTable(table["rows"], table["exponents"])


def write_finite_size(out, s: FiniteSizeSettings, table: FiniteSizeTable, log) -> dict:
    """OUT/results.json, OUT/finite_size.csv and OUT/finite_size.nc from the stage records; returns the results."""
    from attnpaths.experiments.io import to_netcdf

    out = Path(out)
    results = {"experiment": "finite-size", "settings": s.to_dict(), "rows": table.rows,
               "exponents": table.exponents}
    write_csv_atomic(out / "finite_size.csv", table.rows)
    to_netcdf(table_dataset(table.rows), out / "finite_size.nc")
    write_json_atomic(out / "results.json", results)
    log(f"wrote {out / 'finite_size.csv'}, {out / 'finite_size.nc'} and {out / 'results.json'}")
    return results


def run_finite_size(s: FiniteSizeSettings | None = None, out="results/finite-size", resume: bool = False,
                    log: Callable[[str], None] = print) -> dict:
    """Compute (or resume) the study's stages (module docstring) and write OUT/results.json, finite_size.csv and
    finite_size.nc; the figure is the experiment's (`finite_size_figures(results, out)`). Returns the results."""
    s = s or FiniteSizeSettings()
    with Runner(out, "finite-size", s, resume, log) as run:
        sweep = run.stage("sweep", sweep_stage, finite_size_grid(s), run.out, scheduler=s.scheduler,
                          workers=s.workers, resume=run.resume, progress=s.progress, log=log)
        table = run.stage("table", table_stage, sweep, run.out, s)
        return write_finite_size(run.out, s, table, log)


def _report(results: dict, seconds: float) -> list[str]:
    lines = [f"{'alpha':>5} {'N':>6} {'P':>6} {'draws':>5} {'e_mean':>8} {'floor':>8} {'e_U':>8} {'floor':>8} "
             f"{'R-hat':>6}"]
    for r in results["rows"]:
        lines.append(f"{r['alpha']:5g} {r['N']:6g} {r['P']:6g} {r['draws']:5d} {r['error_mean']:8.4f} "
                     f"{r['floor_mean']:8.4f} {r['error_U']:8.4f} {r['floor_U']:8.4f} {r['max_rhat']:6.3f}")
        warning = convergence_warning(r["max_rhat"], r.get("min_ess", math.inf), f"alpha={r['alpha']:g} "
                                      f"N={r['N']:g}")
        if warning:
            lines.append(warning)
    for alpha, fits in results["exponents"].items():
        for label, fit in fits.items():
            raw = fit["raw"]
            lines.append(f"alpha {float(alpha):g}, {label}: error ~ N^{raw['exponent']:.2f} [{raw['low']:.2f}, "
                         f"{raw['high']:.2f}]; widths with error > 2 x floor: {fit['widths_above_2x_floor']}")
    return lines  # the command's one timing line reports the time


PRESETS: Registry = Registry("preset of finite-size")
register_preset(PRESETS, "quick", {"widths": [10.0, 30.0], "draws": 2, "n_samples": 50, "n_test": 50},
                "a smoke test: N = 10 and 30, two draws, 50 draws per chain, 50 test sequences")
register_preset(PRESETS, "full", {}, "the table in docs/experiments/studies.md (the defaults)")
EXPERIMENTS.register("finite-size", Experiment(
    name="finite-size", help="theory vs posterior samples as N grows at fixed alpha = P/N (Markov task, a sweep "
                             "on Dask)", settings=FiniteSizeSettings, presets=PRESETS,
    run=lambda s, out, resume, log: run_finite_size(s, out, resume, log), report=_report,
    figures=finite_size_figures))


NO_POSTERIOR.register("finite-size", NoPosterior(
    "a finite-size study (`attnpaths finite-size`), which samples every cell itself and has no one posterior to "
    "sample", "its cells are many networks (widths x loads x training sets). For more draws run `attnpaths "
    "finite-size` again into a new --out with larger --n-samples, --n-chains or --time-budget; to sample one "
    "network, `attnpaths markov --widths N --samples`"))
