"""Experiment 1 (spec D, Fig. 2): the theory side of the hidden Markov chain task, as typed, resumable stages.

    gp          GP accuracies of the network and of its reference networks (the red lines of Fig. 2c/e)
    theory      the action's minimum for every width (largest first, each warm-started from the previous one);
                progress is kept after every width, so a killed run resumes where it stopped
    alignment   kernel-PC / label overlap at the smallest width, finite width vs GP (Fig. 2d)
    samples     (with samples = true, or added later by `attnpaths sample`) exact posterior draws of the real
                network at `sample_widths`

`OUT/results.json` and its table `OUT/markov.csv` (one row per width) are written from the stage outputs
(atomically); the figures are drawn from the results alone (`figures.markov_figures`, the experiment's figures,
drawn after the run and again by `attnpaths sample`). The settings and the problem they build are in `settings.py`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import jax.numpy as jnp
import numpy as np

from attnpaths._src.compile_cache import CompileTime
from attnpaths._src.analysis import format_order_parameter, pc_alignment
from attnpaths._src.kernels import gp_kernel, renormalized_kernel
from attnpaths._src.paths import path_features
from attnpaths._src.predictor import accuracy, gaussian_accuracy, predict
from attnpaths._src.routes import training_data
from attnpaths._src.saddle import solve_saddle
from attnpaths._src.store import load_record, save_record
from attnpaths.experiments.base import EXPERIMENTS, Experiment
from attnpaths.experiments.io import write_csv_atomic, write_json_atomic
from attnpaths.experiments.markov.settings import (DEFAULT_SAMPLE_WIDTHS, PRESETS, MarkovProblem, MarkovSettings,
                                                   markov_problem)
from attnpaths.experiments.progress import GridProgress
from attnpaths.experiments.runner import Runner, load_run_header
from attnpaths.experiments.sampling import SampleSettings, compare_with_theory, draw_posterior, draws_file, format_row

N_ALIGNMENT_PCS = 30


# ----------------------------------------------------------------------------------------------------------------
# stages
# ----------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GPAccuracies:
    accuracy: dict  # reference name -> test accuracy of its GP limit


def gp_stage(problem: MarkovProblem) -> GPAccuracies:
    net, train, test = problem.network, problem.train, problem.test
    out = {"all paths": accuracy(predict(net.spec, problem.xi, train.y, problem.xi_test).mean, test.y)}
    for name, (spec, attention, _) in net.gp_references.items():
        a, b = path_features(spec, attention, train.x), path_features(spec, attention, test.x)
        out[name] = accuracy(predict(spec, a, train.y, b).mean, test.y)
    return GPAccuracies(out)


@dataclass(frozen=True)
class TheorySweep:
    rows: list  # one dict per width, in the order of settings.widths (N, action, U, U_a, accuracy, ...)
    seconds: float  # wall time of the solves (summed over resumed calls)
    compile_seconds: float = 0.0  # of which JAX tracing, compiling and loading from the compilation cache


def _solve_width(problem: MarkovProblem, data, N: float, init, callback=None) -> dict:
    """The minimum at width N and its test predictions; `data` is the route's training data (built once)."""
    t0 = time.perf_counter()
    saddle = solve_saddle(problem.network.spec.with_width(N), data, init=init, callback=callback)
    pred = predict(saddle.spec, data, None, problem.xi_test, saddle.U1)
    return {"N": N, "action": saddle.action, "U": [np.asarray(u).tolist() for u in saddle.U], "U_a": saddle.U_a,
            "iterations": saddle.iterations, "grad_max": saddle.grad_max,
            "min_hessian_eigenvalue": saddle.min_hessian_eigenvalue,
            "accuracy": accuracy(pred.mean, problem.test.y),
            "gaussian_accuracy": gaussian_accuracy(pred, problem.test.y), "seconds": time.perf_counter() - t0}


def theory_stage(s: MarkovSettings, problem: MarkovProblem, progress_file: Path, log) -> TheorySweep:
    """Solve every width, largest first, warm-starting each from the previous one; after every width the rows
    so far go to `progress_file` (a killed run resumes from it with the same warm starts)."""
    solved, seconds, compiling = {}, 0.0, 0.0
    if progress_file.exists():
        header = load_record(progress_file, kind="progress:theory").header
        solved, seconds = {float(r["N"]): r for r in header["rows"]}, float(header["seconds"])
        compiling = float(header.get("compile_seconds", 0.0))
    init = None
    data = training_data(problem.network.spec, problem.xi, problem.train.y)  # shared by every width's solve
    bar = GridProgress(len(s.widths), f"theory T={s.temperature:g}", s.progress,
                       initial=sum(N in solved for N in s.widths))
    log = bar.log(log)
    for N in sorted(s.widths, reverse=True):
        if N in solved:
            init = [np.asarray(u) for u in solved[N]["U"]]
            continue
        t0 = time.perf_counter()
        with CompileTime() as ct:
            row = solved[N] = _solve_width(problem, data, N, init, bar.solving(N=N))
        init = [np.asarray(u) for u in row["U"]]
        seconds += time.perf_counter() - t0
        compiling += ct.total_seconds
        save_record(progress_file, "progress:theory", {"rows": list(solved.values()), "seconds": seconds,
                                                        "compile_seconds": compiling}, {})
        bar.done()
        log(f"  N={N:g}: accuracy {100 * row['accuracy']:.1f}%, S={row['action']:.6f}, {row['iterations']} Newton "
            f"steps, max|dS/dU|={row['grad_max']:.1e}, min Hessian eig {row['min_hessian_eigenvalue']:.2e}")
    bar.close()
    return TheorySweep([solved[w] for w in s.widths], seconds, compiling)


@dataclass(frozen=True)
class Alignment:
    N: float
    finite_width: np.ndarray  # (n_pcs,) |phi_k . y| / |y| of the finite-width kernel's PCs
    gp: np.ndarray  # (n_pcs,) the same for the GP kernel


def alignment_stage(problem: MarkovProblem, theory: TheorySweep) -> Alignment:
    row = min(theory.rows, key=lambda r: r["N"])
    spec, xi, y = problem.network.spec, problem.xi, problem.train.y
    K_fw = renormalized_kernel(jnp.asarray(row["U"][0]), xi, xi, spec.variances[0])
    return Alignment(row["N"], pc_alignment(np.asarray(K_fw), y, N_ALIGNMENT_PCS).overlaps,
                     pc_alignment(np.asarray(gp_kernel(spec, xi, xi)), y, N_ALIGNMENT_PCS).overlaps)


@dataclass(frozen=True)
class Samples:
    rows: list  # one dict per sampled width (see sampling.compare_with_theory)


def samples_stage(out: Path, problem: MarkovProblem, theory: TheorySweep, widths, sample: SampleSettings,
                  resume: bool, previous: list, log) -> Samples:
    """Posterior draws at `widths` (OUT/samples/<method>_N<N>.npz, kept as they are made); rows of `previous`
    at other widths are kept."""
    rows = {float(r["N"]): r for r in theory.rows}
    done = {float(r["N"]): r for r in previous}
    for N in widths:
        spec = problem.network.spec.with_width(N)
        draws = draw_posterior(sample.method, spec, problem.xi, problem.train.y, problem.xi_test,
                               n_draws=sample.n_samples, n_chains=sample.n_chains, n_warmup=sample.n_warmup,
                               seed=sample.seed, path=draws_file(out, sample.method, N), resume=resume)
        done[N] = compare_with_theory(draws, spec, problem.xi, problem.train.y, problem.xi_test, problem.test.y,
                                      rows[N]["U"][0], sample.method)
        log(format_row(done[N]))
    return Samples([done[k] for k in sorted(done)])


# ----------------------------------------------------------------------------------------------------------------
# the report and the run
# ----------------------------------------------------------------------------------------------------------------

def markov_results(s: MarkovSettings, problem: MarkovProblem, gp: GPAccuracies, theory: TheorySweep,
                   alignment: Alignment, samples: Samples | None) -> dict:
    """results.json, written from the stage outputs."""
    net, spec = problem.network, problem.network.spec
    results = {
        "experiment": "markov",
        "inputs": {"network": s.network, "widths": s.widths, "temperature": spec.temperature,
                   "variances": spec.variances, "heads": spec.heads, "readout": spec.readout,
                   "n_train": net.n_train, "n_test": net.n_test, "train_seed": net.train_seed,
                   "test_seed": net.test_seed, "task": dataclasses.asdict(net.config)},
        "settings": s.to_dict(),
        "path_names": net.path_names,
        "display_order": net.display_order,
        "gp_accuracy": gp.accuracy,
        "theory": theory.rows,
        "alignment": {"N": alignment.N, "finite_width": alignment.finite_width, "gp": alignment.gp},
        "seconds": theory.seconds,
        "compile_seconds": theory.compile_seconds,
    }
    if samples is not None:
        results["samples"] = samples.rows
    return results


THEORY_COLUMNS = ("accuracy", "gaussian_accuracy", "action", "U_a", "iterations", "grad_max",
                  "min_hessian_eigenvalue", "seconds")
SAMPLE_COLUMNS = ("accuracy", "relative_error_mean", "monte_carlo_floor", "relative_error_U", "max_rhat", "min_ess",
                  "n_chains", "n_draws", "seconds")


def markov_table(results: dict) -> list[dict]:
    """OUT/markov.csv: one row per width, the theory's numbers and, at sampled widths, the samples' (sample_*)."""
    sampled = {float(r["N"]): r for r in results.get("samples", [])}
    rows = []
    for r in results["theory"]:
        row = {"N": float(r["N"]), **{k: r[k] for k in THEORY_COLUMNS}}
        row.update({f"sample_{k}": sampled[row["N"]][k] for k in SAMPLE_COLUMNS if row["N"] in sampled})
        rows.append(row)
    return rows


def _log_u(problem: MarkovProblem, theory: TheorySweep, log) -> None:
    row = min(theory.rows, key=lambda r: r["N"])
    net = problem.network
    log(f"U_1 at N={row['N']:g}:\n" + format_order_parameter(np.asarray(row["U"][0]), net.path_names,
                                                                net.display_order))


def _sample_settings(s: MarkovSettings) -> SampleSettings:
    """The run's own sampling settings (also the defaults of `attnpaths sample` on a saved run): its sample widths
    that have a theory solution, else its smallest width."""
    widths = tuple(w for w in s.sample_widths if w in s.widths) or (min(s.widths),)
    return SampleSettings(widths=widths, n_samples=s.n_samples, n_chains=s.n_chains,
                          n_warmup=s.n_warmup, seed=s.seed, method=s.method)


def run_markov(settings: MarkovSettings | None = None, out=None, resume: bool = False,
               log: Callable[[str], None] = print) -> dict:
    """Reproduce the theory side of Fig. 2 (c, d) or Fig. 2e, and optionally the posterior samples.

    Args:
      settings: `MarkovSettings` (default: the paper's 4-path network, widths 10 ... 1000).
      out: folder for the stage records, results.json (and figures, drawn by the caller); None: a temporary
        folder (the results are only returned).
      resume: continue the run in `out` (same settings) instead of starting over.
      log: where progress lines go.

    Returns:
      the results dictionary that is written to `out/results.json`.
    """
    import tempfile

    s = settings or MarkovSettings()
    if out is None:
        with tempfile.TemporaryDirectory() as tmp:
            return run_markov(s, tmp, resume, log)
    with Runner(out, "markov", s, resume, log) as run:
        return _markov_stages(run, s, markov_problem(s), log)


def _markov_stages(run: Runner, s: MarkovSettings, problem: MarkovProblem, log,
                   sample: SampleSettings | None = None, resume_draws: bool = True) -> dict:
    """The stages of a run and its results (OUT/results.json, OUT/markov.csv), written from the stage records
    alone. `sample` (from `attnpaths sample`): draw at sample.widths, keeping the sampled rows at other widths;
    without it, the run's own samples stage (settings.samples), or the one a previous `sample` stored.
    resume_draws: with `sample`, continue the stored draws (False: refuse draws files that exist)."""
    net, out = problem.network, run.out
    gp = run.stage("gp", gp_stage, problem)
    if sample is None:  # `sample` reports its draws only
        log(f"markov {s.network}: P={net.n_train}, test={net.n_test}, T={net.spec.temperature}, paths="
            f"{net.spec.n_paths}; " + ", ".join(f"GP {k} {100 * v:.1f}%" for k, v in gp.accuracy.items()))
    theory = run.stage("theory", theory_stage, s, problem, run.partial("theory"), log)
    if sample is None:
        _log_u(problem, theory, log)
    alignment = run.stage("alignment", alignment_stage, problem, theory)
    samples = None
    if sample is not None:
        previous = run.load("samples", Samples).rows if run.done("samples") else []
        samples = run.stage("samples", samples_stage, out, problem, theory, sample.widths, sample, resume_draws,
                            previous, log, rerun=True)
    elif s.samples:
        samples = run.stage("samples", samples_stage, out, problem, theory, s.sample_widths, _sample_settings(s),
                            run.resume, [], log)
    elif run.done("samples"):  # added by `attnpaths sample`: a resumed run keeps it
        samples = run.load("samples", Samples)
    results = markov_results(s, problem, gp, theory, alignment, samples)
    write_json_atomic(out / "results.json", results)
    write_csv_atomic(out / "markov.csv", markov_table(results))
    return results


def add_markov_samples(out, sample: SampleSettings, resume: bool = False, log=print) -> dict:
    """`attnpaths sample OUT` for a Markov run: the `samples` stage at sample.widths (default 10 and 100), its
    rows merged with those at other widths, on the finished run in `out`; results.json and markov.csv are
    rebuilt from the stage records by the run's own `_markov_stages` (never read back). Returns the results."""
    out = Path(out)
    s = MarkovSettings().updated(load_run_header(out)["all_settings"], f"{out}/run.npz")
    widths = tuple(sample.widths or DEFAULT_SAMPLE_WIDTHS)
    missing = [w for w in widths if w not in s.widths]
    if missing:
        raise ValueError(f"sample widths {missing} have no theory solution in this run (its widths: "
                         f"{sorted(s.widths)}); add them to --widths")
    with Runner(out, "markov", s, resume=True, log=log, only=("samples",)) as run:
        return _markov_stages(run, s, markov_problem(s), log, dataclasses.replace(sample, widths=widths),
                              resume)


def _report(results: dict, seconds: float) -> list[str]:
    return []  # the command's one timing line reports the time


def _figures(results: dict, out) -> list:
    from attnpaths.experiments.markov.figures import markov_figures  # matplotlib loads when a run draws

    return markov_figures(results, out)


def _run_for_cli(settings, out, resume, log):
    results = run_markov(settings, out, resume, log)
    log(f"wrote {Path(out) / 'results.json'} and {Path(out) / 'markov.csv'}")
    return results


EXPERIMENTS.register("markov", Experiment(
    name="markov", help="hidden Markov chain experiment (Fig. 2): theory, GP, optional posterior samples",
    settings=MarkovSettings, presets=PRESETS, run=_run_for_cli, report=_report, add_samples=add_markov_samples,
    sample_settings=_sample_settings, figures=_figures))
