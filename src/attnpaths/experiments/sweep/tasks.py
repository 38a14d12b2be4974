"""What a sweep runs in one cell, and the tasks it can run it on.

A sweep task (`SweepTask`) says which settings class describes its cells, which field holds the width and which
the number of training examples, and how to build a cell's `Problem`: the network, the training data in its
route's form (`attnpaths.training_data`: the P x P or the Gram D x D route, built once and shared by every
width and temperature of the cell's data) and the test set. `compute_cell` then does the same work for every
task: minimise the action at the cell's width and temperature (warm-started from the neighbouring width),
predict the test set with the theory and with the GP limit, and optionally sample the real network's posterior.

Tasks are registered by name in `SWEEP_TASKS`, and the sweep knows them only through it. This module registers
`features` (a user's saved path features; `save_path_features` writes its file); an experiment registers its own
(`attnpaths.experiments.markov.sweep_task` registers `markov`), and a user registers theirs the same way.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np

from attnpaths._src.predictor import accuracy, bias_error, gaussian_accuracy, predict
from attnpaths._src.registry import Registry
from attnpaths._src.routes import training_data
from attnpaths._src.saddle import solve_saddle
from attnpaths._src.spec import NetworkSpec
from attnpaths._src.store import load_record, save_record
from attnpaths.experiments.settings import Settings, at_least, each, positive, setting


class Problem(NamedTuple):
    """Everything a cell needs besides its width and temperature.

    spec: the network (its width and temperature are replaced per cell).
    data: the training data in its route's form (`ExampleData` or `GramStatistics`).
    xi: (P, N0, H) training path features, kept only when the sweep samples (else None).
    y: (P,) training labels.
    xi_test: (P_test, N0, H) test path features; y_test: (P_test,) test labels.
    """

    spec: NetworkSpec
    data: Any
    xi: np.ndarray | None
    y: np.ndarray
    xi_test: np.ndarray
    y_test: np.ndarray


@dataclass(frozen=True)
class SweepTask:
    """A task a sweep can run (see the module docstring).

    name: the `task` key of a grid file.
    settings: its `Settings` class; a grid sets any of its fields (fixed, or as an axis).
    build: build(settings, keep_features) -> Problem; called once per distinct `problem_key`.
    network: network(settings) -> NetworkSpec, without building the data (sizes the store's dimensions).
    width_field: the field holding the widths (a cell sets it to its one width, the axis N).
    examples_field: the field holding P (set from the load axis alpha = P / N), or None.
    temperature_field: the field holding T.
    excluded: fields a sweep must not set (with the reason), e.g. the experiment's own sampling options.
    presets: the task's presets (a grid's `preset` key), or None.
    even_examples: P must be even (class-balanced tasks).
    """

    name: str
    settings: type
    build: Callable[[Any, bool], Problem]
    network: Callable[[Any], NetworkSpec]
    width_field: str = "widths"
    examples_field: str | None = "n_train"
    temperature_field: str = "temperature"
    excluded: dict = dataclasses.field(default_factory=dict)
    presets: Registry | None = None
    even_examples: bool = False

    def problem_key(self, settings) -> dict:
        """The settings that determine the problem: all but the width and the temperature."""
        d = settings.identity()
        d.pop(self.width_field, None)
        d.pop(self.temperature_field, None)
        return d

    def examples_for(self, load: float, width: float) -> int:
        """P for the load alpha = P / N: the nearest integer (even, for class-balanced tasks), at least 1 (2)."""
        if self.even_examples:
            return max(2, 2 * int(np.floor(load * width / 2 + 0.5)))
        return max(1, int(np.floor(load * width + 0.5)))


SWEEP_TASKS: Registry[SweepTask] = Registry("sweep task")
"""name -> SweepTask: the tasks `attnpaths sweep` runs (markov, features, oneshot, or a user's)."""


# ----------------------------------------------------------------------------------------------------------------
# one cell
# ----------------------------------------------------------------------------------------------------------------

class CellResult(NamedTuple):
    """What a cell returns to the sweep's driver, which stores it.

    values: variable name -> float or array (the store's variables; missing ones stay NaN).
    error: '' for a finished cell, else what went wrong (the cell is stored as failed).
    warm: the packed order parameters (U_1, ..., U_L) to warm-start the next width with: this cell's solution,
      or, if it failed, the warm start it was given (None: the GP values).
    seconds: wall time of the cell.
    """

    values: dict
    error: str
    warm: np.ndarray | None
    seconds: float


def flatten_orders(U) -> np.ndarray:
    """(U_1, ..., U_L) -> one flat float64 vector of the full matrices (the store's `order_parameters`).

    Row-major n_l^2 entries per level, not `attnpaths._src.order.pack_order`'s upper triangle: the store keeps
    whole matrices so a reader needs no layout convention beyond the level sizes.
    """
    return np.concatenate([np.asarray(u, dtype=np.float64).ravel() for u in U])


def unflatten_orders(flat, sizes) -> list[np.ndarray]:
    """Inverse of `flatten_orders` for levels of sizes n_1, ..., n_L (trailing NaN padding is ignored)."""
    out, start = [], 0
    for n in sizes:
        out.append(np.asarray(flat[start:start + n * n], dtype=np.float64).reshape(n, n))
        start += n * n
    return out


def _metrics(prefix: str, prediction, y_test) -> dict:
    return {f"{prefix}_accuracy": accuracy(prediction.mean, y_test),
            f"{prefix}_mse": bias_error(prediction.mean, y_test),
            f"{prefix}_gaussian_accuracy": gaussian_accuracy(prediction, y_test),
            f"{prefix}_variance": float(np.mean(prediction.var))}


def theory_and_gp(problem: Problem, spec: NetworkSpec, init) -> tuple[dict, list]:
    """The theory's saddle point at `spec` (warm start `init`) and the theory's and the GP's test metrics."""
    t0 = time.perf_counter()
    saddle = solve_saddle(spec, problem.data, init=init)
    theory = predict(spec, problem.data, None, problem.xi_test, saddle.U1)
    gp = predict(spec, problem.data, None, problem.xi_test)
    values = {"action": saddle.action, "U_a": saddle.U_a, "iterations": float(saddle.iterations),
              "grad_max": saddle.grad_max, "min_hessian_eigenvalue": saddle.min_hessian_eigenvalue,
              "U": saddle.U1, "order_parameters": flatten_orders(saddle.U),
              **_metrics("theory", theory, problem.y_test), **_metrics("gp", gp, problem.y_test),
              "theory_seconds": time.perf_counter() - t0}
    return values, list(saddle.U)


def sampled_values(problem: Problem, spec: NetworkSpec, U1, sampling, path) -> dict:
    """Posterior draws of the real network at `spec` (streamed to `path`, resumable) next to the theory."""
    from attnpaths._src.sampling.api import sample_from_features
    from attnpaths.experiments.sampling import compare_with_theory

    if problem.xi is None:
        raise ValueError("sampling needs the training features; build the problem with keep_features=True")
    draws = sample_from_features(spec, problem.xi, problem.y, problem.xi_test, method=sampling.method,
                                 n_draws=sampling.n_samples, n_chains=sampling.n_chains,
                                 n_warmup=sampling.n_warmup, seed=sampling.seed, path=path, resume=True,
                                 time_budget=sampling.time_budget, progress=False)
    row = compare_with_theory(draws, spec, problem.xi, problem.y, problem.xi_test, problem.y_test, U1,
                              sampling.method)
    U1 = np.asarray(U1)
    return {"sample_accuracy": row["accuracy"], "relative_error_mean": row["relative_error_mean"],
            "monte_carlo_floor_mean": row["monte_carlo_floor"], "relative_error_U": row["relative_error_U"],
            "monte_carlo_floor_U": float(np.linalg.norm(row["U_se"]) / np.linalg.norm(U1)),
            "max_rhat": row["max_rhat"], "min_ess": row["min_ess"], "median_iat_sweeps": row["median_iat_sweeps"],
            "n_draws": float(row["n_chains"] * row["n_draws"]), "sample_seconds": row["seconds"],
            "U_sampled": np.asarray(row["U"]), "U_sampled_se": np.asarray(row["U_se"])}


def compute_cell(problem: Problem, spec: NetworkSpec, previous=None, sampling=None,
                 draws_path: Path | None = None) -> CellResult:
    """One cell: theory + GP at `spec`, and posterior samples when `sampling` is given.

    previous: the warm start: a `CellResult` of the next larger width (its `warm`), a packed order-parameter
      vector, or None (the GP values). Any exception is caught and returned as the cell's error, so a failing
      cell never stops a sweep.
    """
    t0 = time.perf_counter()
    warm = previous.warm if isinstance(previous, CellResult) else previous
    try:
        init = None if warm is None else unflatten_orders(warm, spec.level_sizes)
        values, U = theory_and_gp(problem, spec, init)
        values["P"] = float(problem.y.shape[0])
        if sampling is not None:
            values.update(sampled_values(problem, spec, U[0], sampling, draws_path))
        return CellResult(values, "", flatten_orders(U), time.perf_counter() - t0)
    except Exception as err:  # noqa: BLE001 (recorded in the store; the sweep goes on)
        return CellResult({}, failure_text(err), warm, time.perf_counter() - t0)


def failure_text(err: BaseException) -> str:
    """`Type: message` of an exception, with the innermost frame, as a failed cell records it."""
    frames = traceback.extract_tb(err.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(err).__name__}: {err}{where}"


# ----------------------------------------------------------------------------------------------------------------
# features: a user's saved path features
# ----------------------------------------------------------------------------------------------------------------

FEATURES_KIND = "path-features"


def save_path_features(path, spec: NetworkSpec, xi, y, xi_test, y_test) -> None:
    """Save path features for the `features` sweep task (one record of the package's format, written atomically).

    Args:
      path: the .npz file.
      spec: the network the features belong to (its heads, variances and readout are kept; widths and T are
        set by the sweep).
      xi: (P, N0, H) training path features (`attnpaths.path_features`); y: (P,) labels.
      xi_test: (P_test, N0, H) test path features; y_test: (P_test,) labels (+-1 for the accuracies).
    """
    header = {"heads": list(spec.heads), "variances": list(spec.variances), "readout": spec.readout}
    save_record(path, FEATURES_KIND, header, {"xi": np.asarray(xi, dtype=np.float64), "y": np.asarray(y),
                                              "xi_test": np.asarray(xi_test, dtype=np.float64),
                                              "y_test": np.asarray(y_test)})


@dataclass(frozen=True)
class FeatureSettings(Settings):
    """Settings of the `features` sweep task: a saved file of path features (see `save_path_features`)."""

    path: str = setting("features.npz", "the file written by save_path_features")
    widths: tuple[float, ...] = setting((10.0, 100.0, 1000.0), "widths N", check=each(positive))
    temperature: float = setting(0.01, "Bayesian temperature T", check=positive)
    n_train: int | None = setting(None, "P: use a random subset of this many training examples (none: all)",
                                  check=at_least(1))
    subset_seed: int = setting(0, "seed of the random subset of training examples", check=at_least(0))


def _features_header(s: FeatureSettings) -> dict:
    path = Path(s.path)
    if not path.is_file():
        raise FileNotFoundError(f"features file {path} does not exist (write it with save_path_features)")
    return load_record(path, kind=FEATURES_KIND).header


def _features_build(s: FeatureSettings, keep_features: bool) -> Problem:
    header, arrays = load_record(s.path, kind=FEATURES_KIND)
    xi, y = arrays["xi"], arrays["y"]
    if s.n_train is not None:
        if s.n_train > xi.shape[0]:
            raise ValueError(f"setting 'n_train' ({s.n_train}) exceeds the {xi.shape[0]} examples in {s.path}")
        keep = np.sort(np.random.default_rng(s.subset_seed).permutation(xi.shape[0])[:s.n_train])
        xi, y = xi[keep], y[keep]
    spec = _features_spec(header, s)
    return Problem(spec, training_data(spec, xi, y), xi if keep_features else None, y, arrays["xi_test"],
                   arrays["y_test"])


def _features_spec(header: dict, s: FeatureSettings) -> NetworkSpec:
    return NetworkSpec(heads=tuple(header["heads"]), widths=float(s.widths[0]), variances=tuple(header["variances"]),
                       temperature=s.temperature, readout=header["readout"])


def _features_network(s: FeatureSettings) -> NetworkSpec:
    return _features_spec(_features_header(s), s)


SWEEP_TASKS.register("features", SweepTask("features", FeatureSettings, _features_build, _features_network))
