"""Experiment 1 (spec D, Fig. 2): the theory side of the hidden Markov chain task, one call.

`run_markov` builds the preset's data and heads, solves the action for every width (largest first, each warm
started from the previous one), evaluates the finite-width and GP predictors on the test set and the kernel-task
alignment, and writes `results.json` after every width (atomically, so an interrupted run keeps what it
finished). The figures are drawn from `results.json` alone (`plots.markov_figures`).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable, Sequence

import jax.numpy as jnp
import numpy as np

from attnpaths._src.analysis import format_order_parameter, pc_alignment
from attnpaths._src.kernels import gp_kernel, renormalized_kernel
from attnpaths._src.paths import path_features
from attnpaths._src.predictor import accuracy, gaussian_accuracy, predict
from attnpaths._src.saddle import solve_saddle
from attnpaths._src.tasks.markov import markov_data, markov_preset
from attnpaths.experiments.io import write_json_atomic

N_ALIGNMENT_PCS = 30


def markov_setup(preset: str, n_train: int | None = None, n_test: int | None = None,
                 temperature: float | None = None):
    """The preset with its overrides, its (train, test) data and their path features (xi, xi_test).

    One place for what `run_markov` builds and what a saved run is rebuilt from (samples).
    """
    pre = markov_preset(preset)
    changes = {k: v for k, v in dict(n_train=n_train, n_test=n_test).items() if v is not None}
    if temperature is not None:
        changes["spec"] = pre.spec.replace(temperature=temperature)
    pre = dataclasses.replace(pre, **changes)
    train, test = markov_data(pre)
    xi = path_features(pre.spec, pre.attention, train.x)
    xit = path_features(pre.spec, pre.attention, test.x)
    return pre, train, test, xi, xit


def _gp_accuracies(preset, train, test, xi, xit) -> dict:
    out = {"all paths": accuracy(predict(preset.spec, xi, train.y, xit).mean, test.y)}
    for name, (spec, attention, _) in preset.gp_references.items():
        a, b = path_features(spec, attention, train.x), path_features(spec, attention, test.x)
        out[name] = accuracy(predict(spec, a, train.y, b).mean, test.y)
    return out


def run_markov(preset: str = "4paths", widths: Sequence[float] | None = None, out: str | Path | None = None,
               n_train: int | None = None, n_test: int | None = None, temperature: float | None = None,
               log: Callable[[str], None] = print) -> dict:
    """Reproduce the theory side of Fig. 2 (c, d) or Fig. 2e.

    Args:
      preset: '4paths' (Fig. 2c,d) or '2paths' (Fig. 2e).
      widths: widths N (all layers equal); default the paper's 10 ... 1000.
      out: folder for results.json (and figures, drawn by the caller); None keeps everything in memory.
      n_train, n_test: override P = 100 and the 1000 test sequences.
      temperature: override T = 0.01.

    Returns:
      the results dictionary that is written to `out/results.json`.
    """
    start = time.perf_counter()
    if widths is not None and (len(widths) == 0 or min(float(w) for w in widths) <= 0):
        raise ValueError(f"widths must be a non-empty list of positive numbers; got {tuple(widths)}")
    pre, train, test, xi, xit = markov_setup(preset, n_train, n_test, temperature)
    spec = pre.spec
    widths = tuple(float(w) for w in (pre.widths if widths is None else widths))
    results = {
        "experiment": "markov",
        "inputs": {"preset": preset, "widths": widths, "temperature": spec.temperature,
                   "variances": spec.variances, "heads": spec.heads, "readout": spec.readout,
                   "n_train": pre.n_train, "n_test": pre.n_test, "train_seed": pre.train_seed,
                   "test_seed": pre.test_seed, "task": dataclasses.asdict(pre.config)},
        "path_names": pre.path_names,
        "display_order": pre.display_order,
        "gp_accuracy": _gp_accuracies(pre, train, test, xi, xit),
        "theory": [],
    }
    log(f"markov {preset}: P={pre.n_train}, test={pre.n_test}, T={spec.temperature}, paths={spec.n_paths}; "
        + ", ".join(f"GP {k} {100 * v:.1f}%" for k, v in results["gp_accuracy"].items()))
    path = None if out is None else Path(out) / "results.json"
    init, solved = None, {}
    for N in sorted(widths, reverse=True):
        t0 = time.perf_counter()
        saddle = solve_saddle(spec.with_width(N), xi, train.y, init=init)
        init = saddle.U
        pred = predict(saddle.spec, xi, train.y, xit, saddle.U1)
        solved[N] = {"N": N, "action": saddle.action, "U": saddle.U, "U_a": saddle.U_a,
                     "iterations": saddle.iterations, "grad_max": saddle.grad_max,
                     "min_hessian_eigenvalue": saddle.min_hessian_eigenvalue,
                     "accuracy": accuracy(pred.mean, test.y), "gaussian_accuracy": gaussian_accuracy(pred, test.y),
                     "seconds": time.perf_counter() - t0}
        log(f"  N={N:g}: accuracy {100 * solved[N]['accuracy']:.1f}%, S={saddle.action:.6f}, "
            f"{saddle.iterations} Newton steps, max|dS/dU|={saddle.grad_max:.1e}, "
            f"min Hessian eig {saddle.min_hessian_eigenvalue:.2e}")
        results["theory"] = [solved[w] for w in widths if w in solved]
        if path is not None:
            write_json_atomic(path, results)
    n_small = min(widths)
    U_small = jnp.asarray(solved[n_small]["U"][0])
    log(f"U_1 at N={n_small:g}:\n" + format_order_parameter(np.asarray(U_small), pre.path_names, pre.display_order))
    K_fw = renormalized_kernel(U_small, xi, xi, spec.variances[0])
    results["alignment"] = {
        "N": n_small,
        "finite_width": pc_alignment(np.asarray(K_fw), train.y, N_ALIGNMENT_PCS).overlaps,
        "gp": pc_alignment(np.asarray(gp_kernel(spec, xi, xi)), train.y, N_ALIGNMENT_PCS).overlaps,
    }
    results["seconds"] = time.perf_counter() - start
    if path is not None:
        write_json_atomic(path, results)
    return results
