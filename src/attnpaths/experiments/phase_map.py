"""`attnpaths phase-map`: where finite width helps on the Markov task, beyond the paper.

For each Markov network (4paths, 2paths) and each width N, the load alpha = P / N and the temperature T span a
grid; every cell solves the theory at (N, P = alpha N, T) on several independent training sets (draws) and
compares it with the GP limit on the same test set:

    delta_accuracy = accuracy(theory) - accuracy(GP),   delta_mse = MSE(theory) - MSE(GP)

(the MSE of the predictor mean on the test set). delta_accuracy > 0 and delta_mse < 0 mean that the
finite-width renormalisation of the path kernels (the interplay of the paths) generalises better than the GP.
The run is two stages on the experiment `Runner`:

    sweep   the cells, run through the sweep runner (`attnpaths.experiments.sweep`) on any Dask cluster; its
            output is the store OUT/sweep.zarr (resumable cell by cell)
    table   the store reduced to the map: means over draws with their standard errors, one row per cell, and a
            summary per network and width

OUT/results.json, OUT/phase_map.csv and OUT/phase_map.nc (the map with CF attributes) are written from the stage
records by `write_phase_map`; the heat maps OUT/phase_map_*.png with the delta = 0 contour are drawn from the
results alone (`phase_map_figures`, the experiment's figures).

P is rounded to the nearest even number >= 2 (the Markov data are class-balanced): at N = 10 the loads 0.1 and
0.5 give P = 2 and P = 6; the store holds the P of every cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from attnpaths._src.registry import Registry
from attnpaths._src.tasks.markov import MARKOV_NETWORKS
from attnpaths.experiments.base import EXPERIMENTS, Experiment
from attnpaths.experiments.io import write_csv_atomic, write_json_atomic
from attnpaths.experiments.runner import Runner
from attnpaths.experiments.sampling import NO_POSTERIOR, NoPosterior
from attnpaths.experiments.settings import Settings, at_least, each, positive, register_preset, setting
from attnpaths.experiments.sweep.command import StoredSweep, sweep_stage
from attnpaths.experiments.sweep.grid import Grid, axis_labels

ALPHAS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
TEMPERATURES = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0)


@dataclass(frozen=True)
class PhaseMapSettings(Settings):
    """The grid of the phase map and where it runs."""

    networks: tuple[str, ...] = setting(("4paths", "2paths"), "Markov networks", choices=MARKOV_NETWORKS)
    widths: tuple[float, ...] = setting((10.0, 100.0), "widths N (P varies at fixed N)", check=each(positive))
    alphas: tuple[float, ...] = setting(ALPHAS, "loads alpha = P / N", check=each(positive))
    temperatures: tuple[float, ...] = setting(TEMPERATURES, "temperatures T", check=each(positive))
    draws: int = setting(4, "independent training sets per cell (train seeds first_seed, first_seed + 1, ...)",
                         check=at_least(1))
    first_seed: int = setting(1, "train seed of the first draw (the test seed must not be among the draws)",
                              check=at_least(0))
    n_test: int = setting(1000, "test sequences (the same test set for every cell)", check=at_least(2))
    test_seed: int = setting(59, "seed of the test set", check=at_least(0))
    scheduler: str | None = setting(None, "address of a running Dask scheduler (none: a LocalCluster)",
                                    identity=False)
    workers: int | None = setting(None, "LocalCluster worker processes, one thread each (none: one per core)",
                                  check=at_least(1), identity=False)
    progress: bool = setting(True, "show a progress bar over the sweep's cells on stderr", identity=False)

    def __post_init__(self):
        super().__post_init__()
        if self.first_seed <= self.test_seed < self.first_seed + self.draws:
            raise ValueError(f"setting 'test_seed' ({self.test_seed}) is one of the train seeds {self.first_seed} "
                             f"... {self.first_seed + self.draws - 1}: the test set would be a training set")


def phase_map_grid(s: PhaseMapSettings) -> Grid:
    """The sweep grid of the phase map: network x N x alpha x T x train seed on the Markov task."""
    return Grid.from_dict({
        "task": "markov",
        "settings": {"n_test": s.n_test, "test_seed": s.test_seed},
        "axes": {"network": list(s.networks), "N": list(s.widths), "alpha": list(s.alphas),
                 "temperature": list(s.temperatures),
                 "train_seed": list(range(s.first_seed, s.first_seed + s.draws))}}, "phase map")


PRESETS: Registry = Registry("preset of phase-map")
register_preset(PRESETS, "quick", {"networks": ["4paths"], "widths": [10.0], "alphas": [1.0, 10.0, 100.0],
                                   "temperatures": [0.01, 1.0], "draws": 2, "n_test": 200},
                "a smoke test: 4paths, N = 10, three loads, two temperatures, two draws, 200 test sequences")
register_preset(PRESETS, "full", {}, "the map in docs/experiments/studies.md (the defaults): both networks, "
                "N = 10 and 100, alpha 0.1 ... 100, T 1e-3 ... 10, four draws")


# ----------------------------------------------------------------------------------------------------------------
# from the store to the map
# ----------------------------------------------------------------------------------------------------------------

MEANS = {"delta_accuracy": "test accuracy, theory - GP", "delta_mse": "test MSE of the predictor mean, theory - GP",
         "theory_accuracy": "test accuracy of the theory", "gp_accuracy": "test accuracy of the GP limit",
         "theory_mse": "test MSE of the theory's predictor mean", "gp_mse": "test MSE of the GP's predictor mean"}
LABELS = {"n_draws": ("finished draws (training sets) of the cell", "1"), "P": ("training examples P", "1"),
          **{k: (f"{v}, mean over draws", "1") for k, v in MEANS.items()},
          **{f"{k}_se": (f"{v}, standard error of the mean", "1") for k, v in MEANS.items()}}


def draw_average(ds, draw_axis: str = "train_seed"):
    """Means over the data draws (finished cells only) with standard errors: an xarray Dataset over the other
    axes holding delta_accuracy, delta_mse (theory - GP), the accuracies and MSEs, P, and n_draws, each with CF
    long_name and units (`LABELS`)."""
    import xarray as xr

    from attnpaths.experiments.cf import label

    ok = ds.done & (ds.error == "")
    fields = {"delta_accuracy": ds.theory_accuracy - ds.gp_accuracy, "delta_mse": ds.theory_mse - ds.gp_mse,
              "theory_accuracy": ds.theory_accuracy, "gp_accuracy": ds.gp_accuracy,
              "theory_mse": ds.theory_mse, "gp_mse": ds.gp_mse}
    n = ok.sum(draw_axis)
    out = {"n_draws": n, "P": ds.P.where(ok).max(draw_axis)}
    for name, value in fields.items():
        v = value.where(ok)
        out[name] = v.mean(draw_axis)
        out[f"{name}_se"] = v.std(draw_axis, ddof=1) / np.sqrt(n.where(n > 1))
    return label(xr.Dataset(out), LABELS)


def summary_rows(avg) -> list[dict]:
    """Per network and width: where the theory beats the GP by more than 2 standard errors, where it loses, and
    the extremes (with their load and temperature)."""
    rows = []
    for net in avg.network.values:
        for N in avg.N.values:
            a = avg.sel(network=net, N=N)
            d, se = a.delta_accuracy.values, a.delta_accuracy_se.values
            valid = np.isfinite(d)
            best = np.unravel_index(np.nanargmax(d), d.shape)
            worst = np.unravel_index(np.nanargmin(d), d.shape)
            m, mse = a.delta_mse.values, a.delta_mse_se.values
            rows.append({
                "network": str(net), "N": float(N), "cells": int(valid.sum()),
                "helps": int(np.sum(d - 2 * se > 0)), "hurts": int(np.sum(d + 2 * se < 0)),
                "mse_helps": int(np.sum(m + 2 * mse < 0)), "mse_hurts": int(np.sum(m - 2 * mse > 0)),
                "best": {"delta_accuracy": float(d[best]), "se": float(se[best]),
                         "alpha": float(a.alpha.values[best[0]]), "T": float(a.temperature.values[best[1]]),
                         "theory": float(a.theory_accuracy.values[best]), "gp": float(a.gp_accuracy.values[best])},
                "worst": {"delta_accuracy": float(d[worst]), "se": float(se[worst]),
                          "alpha": float(a.alpha.values[worst[0]]), "T": float(a.temperature.values[worst[1]]),
                          "theory": float(a.theory_accuracy.values[worst]),
                          "gp": float(a.gp_accuracy.values[worst])},
            })
    return rows


def phase_map_figures(results: dict, out) -> list[Path]:
    """One figure per network from the results' rows (`results["cells"]`): rows = widths, columns = delta
    accuracy and delta MSE over (alpha, T), diverging colours centred at 0, the delta = 0 contour in black, cells
    that differ from 0 by < 2 se hatched."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    avg = map_dataset(results["cells"])
    files = []
    alphas, temps = avg.alpha.values.astype(float), avg.temperature.values.astype(float)
    for net in avg.network.values:
        widths = avg.N.values
        fig, axes = plt.subplots(len(widths), 2, figsize=(10, 3.6 * len(widths)), squeeze=False)
        for row, N in enumerate(widths):
            a = avg.sel(network=net, N=N)
            for col, (name, label, sign) in enumerate((("delta_accuracy", r"$\Delta$acc = theory $-$ GP", 1),
                                                        ("delta_mse", r"$\Delta$MSE = theory $-$ GP", -1))):
                ax = axes[row, col]
                z, se = a[name].values.T, a[f"{name}_se"].values.T  # (T, alpha)
                vmax = float(np.nanmax(np.abs(z))) or 1.0
                mesh = ax.pcolormesh(alphas, temps, sign * z, cmap="RdBu", vmin=-vmax, vmax=vmax, shading="nearest")
                if min(z.shape) >= 2 and np.nanmin(z) < 0 < np.nanmax(z):  # a contour needs a 2-D grid
                    ax.contour(alphas, temps, z, levels=[0.0], colors="k", linewidths=1.5)
                weak = np.abs(z) < 2 * np.nan_to_num(se, nan=np.inf)
                ax.scatter(*np.meshgrid(alphas, temps)[::1], s=6 * weak, c="k", marker="x", linewidths=0.6)
                ax.set_xscale("log")
                ax.set_yscale("log")
                ax.set_xlabel(r"load $\alpha = P/N$")
                ax.set_ylabel("temperature T")
                ax.set_title(f"{net}, N = {float(N):g}: {label}", fontsize=9)
                cb = fig.colorbar(mesh, ax=ax)
                cb.set_label(("blue: theory better" if sign > 0 else "blue: theory better (lower MSE)"), fontsize=8)
                ticks = cb.get_ticks()
                cb.set_ticks(ticks, labels=[f"{sign * t:.3g}" for t in ticks])
        fig.suptitle(f"Markov task, {net}: finite width vs GP (mean over draws; black line: delta = 0; x: |delta| "
                     "< 2 se)", fontsize=10)
        fig.tight_layout()
        path = out / f"phase_map_{net}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        files.append(path)
    return files


def table_rows(avg) -> list[dict]:
    """The draw-averaged map as table rows, one per cell (network, N, alpha, temperature, then the means)."""
    return avg.to_dataframe().reset_index().to_dict(orient="records")


MAP_AXES = ("network", "N", "alpha", "temperature")


def map_dataset(rows: list[dict], labels: dict | None = None):
    """The table's rows back as the map, an xarray Dataset over `MAP_AXES` with each axis in the order of the
    rows (the grid's); `labels` (name -> (long_name, units), with the axes'): CF-labelled (`cf.label`)."""
    import pandas as pd

    from attnpaths.experiments.cf import label

    frame = pd.DataFrame(rows)
    order = {a: list(dict.fromkeys(frame[a])) for a in MAP_AXES}
    ds = frame.set_index(list(MAP_AXES)).to_xarray().reindex(order)
    return ds if labels is None else label(ds, labels)


@dataclass(frozen=True)
class PhaseMapTable:
    """The store reduced: the draw-averaged map, one row per cell (`table_rows`), and its summary per network and
    width (`summary_rows`)."""

    cells: list
    summary: list


def table_stage(sweep: StoredSweep, out) -> PhaseMapTable:
    """The stage after the sweep: its store (OUT/<sweep.store>) averaged over the draws."""
    from attnpaths.experiments.sweep.store import open_sweep

    avg = draw_average(open_sweep(Path(out)).load())
    return PhaseMapTable(table_rows(avg), summary_rows(avg))


def phase_map_results(s: PhaseMapSettings, table: PhaseMapTable) -> dict:
    return {"experiment": "phase-map", "settings": s.to_dict(), "summary": table.summary, "cells": table.cells}


def write_phase_map(out, s: PhaseMapSettings, table: PhaseMapTable, log) -> dict:
    """OUT/results.json, OUT/phase_map.csv and OUT/phase_map.nc from the stage records; returns the results."""
    from attnpaths.experiments.io import to_netcdf

    out = Path(out)
    results = phase_map_results(s, table)
    write_csv_atomic(out / "phase_map.csv", table.cells)
    to_netcdf(map_dataset(table.cells, {**axis_labels(phase_map_grid(s)), **LABELS}), out / "phase_map.nc")
    write_json_atomic(out / "results.json", results)
    log(f"wrote {out / 'phase_map.csv'}, {out / 'phase_map.nc'} and {out / 'results.json'}")
    return results


def run_phase_map(s: PhaseMapSettings | None = None, out="results/phase-map", resume: bool = False,
                  log: Callable[[str], None] = print) -> dict:
    """Compute (or resume) the phase map's stages (module docstring) and write OUT/results.json, phase_map.csv
    and phase_map.nc; the figures are the experiment's (`phase_map_figures(results, out)`). Returns the results."""
    s = s or PhaseMapSettings()
    with Runner(out, "phase-map", s, resume, log) as run:
        sweep = run.stage("sweep", sweep_stage, phase_map_grid(s), run.out, scheduler=s.scheduler,
                          workers=s.workers, resume=run.resume, progress=s.progress, log=log)
        table = run.stage("table", table_stage, sweep, run.out)
        return write_phase_map(run.out, s, table, log)


def _report(results: dict, seconds: float) -> list[str]:
    lines = []
    for r in results["summary"]:
        b, w = r["best"], r["worst"]
        lines.append(f"{r['network']} N={r['N']:g}: theory > GP in {r['helps']}/{r['cells']} cells, < GP in "
                     f"{r['hurts']} (2 se); best {100 * b['delta_accuracy']:+.1f} points at alpha={b['alpha']:g}, "
                     f"T={b['T']:g}; worst {100 * w['delta_accuracy']:+.1f} at alpha={w['alpha']:g}, T={w['T']:g}")
    return lines  # the command's one timing line reports the time


EXPERIMENTS.register("phase-map", Experiment(
    name="phase-map", help="Markov task: theory - GP accuracy and test MSE over load alpha = P/N and temperature "
                           "(a sweep on Dask)", settings=PhaseMapSettings, presets=PRESETS,
    run=lambda s, out, resume, log: run_phase_map(s, out, resume, log), report=_report,
    figures=phase_map_figures))


NO_POSTERIOR.register("phase-map", NoPosterior(
    "a phase map (`attnpaths phase-map`), which has no posterior to sample",
    "it compares the theory with the GP limit in every cell. To sample the network's posterior next to the "
    "theory, run `attnpaths markov --widths N --samples` (then `attnpaths sample` on that run adds more), or "
    "`attnpaths finite-size` for samples vs theory as N grows"))
