"""Stage `theory.d<draw>` of the one-shot experiment: the theory on the trained network's heads (spec E.3-E.4).

The trained query/key weights become `attnpaths.QKHeads`; with the theory's P training episodes of the draw they
give the path features, and the action is minimised on a (width, temperature) grid: temperatures ascending,
within a temperature the widths largest first, each solve started from a prediction of log U from the grid's
solved cells (`warm_starts`: extrapolation along N corrected along T), which depends on the grid alone, so a
resumed grid is bitwise the uninterrupted one; the route's training data are built once per draw. The theory's
and the GP's predictions (mean and variance) on the validation set are stored for every grid point (they choose
T); the later stages predict the test sets only at the chosen temperatures, from the stored U.

Temperature choice (never on the test set): per width, the T with the best validation accuracy (ties: the lower
action, then the lower T); the GP the same way. When the highest temperature of the grid is chosen for some width
or for the GP, the next of `extra_temperatures` is added and the choice repeated, until every choice is interior
or the extra temperatures run out (then the result says which choices sit on the edge).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import attnpaths as ap
from attnpaths._src.store import load_record, save_record
from attnpaths._src.training import attention_layers
from attnpaths.experiments.oneshot.data import EpisodeSets
from attnpaths.experiments.oneshot.settings import OneShotSettings
from attnpaths.experiments.oneshot.train import TrainedNetwork
from attnpaths.experiments.progress import GridProgress


def theory_spec(s: OneShotSettings) -> ap.NetworkSpec:
    return ap.NetworkSpec(heads=tuple(s.heads), widths=float(max(s.widths)), variances=1.0,
                          temperature=float(s.temperatures[0]), readout="mean")


@dataclass(frozen=True)
class Features:
    """Path features (P, N0, H) of the theory's training episodes of one draw and of every evaluation set."""

    train_x: np.ndarray
    train_y: np.ndarray
    sets: dict  # name -> (xi, y, classes)


def features(s: OneShotSettings, episodes: EpisodeSets, net: TrainedNetwork, draw: int) -> Features:
    spec, heads = theory_spec(s), attention_layers(net.weights())
    train = episodes.theory_train(s, draw)
    sets = {name: (np.asarray(ap.path_features(spec, heads, e.x)), e.y, e.classes)
            for name, e in episodes.evaluation_sets().items()}
    return Features(np.asarray(ap.path_features(spec, heads, train.x)), train.y, sets)


@dataclass(frozen=True)
class TheoryGrid:
    """Output of stage `theory.d<draw>`. Axis order: width (ascending) x temperature (ascending) x episode."""

    widths: list
    temperatures: list
    rows: list  # one dict per (N, T): converged, action, iterations, grad_max, min_hessian_eigenvalue, U_a, ...
    U1: np.ndarray  # (n_N, n_T, H, H); NaN where the solve failed
    U_upper: tuple[np.ndarray, ...]  # U_2 .. U_L, each (n_N, n_T, n_l, n_l)
    val_mean: np.ndarray  # (n_N, n_T, n_val) theory predictor mean on the validation episodes
    val_var: np.ndarray
    gp_val_mean: np.ndarray  # (n_T, n_val) the GP's
    gp_val_var: np.ndarray
    added_temperatures: list  # the extra temperatures the edge rule added
    seconds: float

    def index(self, N: float, T: float) -> tuple[int, int]:
        return self.widths.index(float(N)), self.temperatures.index(float(T))

    def row(self, N: float, T: float) -> dict:
        i, j = self.index(N, T)
        return self.rows[i * len(self.temperatures) + j]

    def U(self, N: float, T: float) -> tuple:
        i, j = self.index(N, T)
        return (self.U1[i, j],) + tuple(u[i, j] for u in self.U_upper)


class _Grid:
    """The mutable grid while it is solved (the stage output is built from it at the end)."""

    def __init__(self, s: OneShotSettings, f: Features):
        self.widths = sorted(float(w) for w in s.widths)
        self.names = ["validation"]
        self.columns: dict[float, dict] = {}  # T -> {"rows": {N: row}, "U": {N: tuple}, "pred": {N: {set: (m, v)}}}
        self.gp: dict[float, dict] = {}  # T -> {set: (m, v)}
        self.added: list[float] = []
        self.seconds = 0.0

    def save(self, path: Path) -> None:
        arrays, rows = {}, []
        for T, col in self.columns.items():
            for N, row in col["rows"].items():
                rows.append(row)
                key = f"{N:g}_{T:g}"
                for l, u in enumerate(col["U"].get(N, ())):
                    arrays[f"U{l}/{key}"] = u
                for name, (m, v) in col["pred"].get(N, {}).items():
                    arrays[f"mean/{name}/{key}"], arrays[f"var/{name}/{key}"] = m, v
            for name, (m, v) in self.gp[T].items():
                arrays[f"gpmean/{name}/{T:g}"], arrays[f"gpvar/{name}/{T:g}"] = m, v
        save_record(path, "progress:theory-grid", {"rows": rows, "temperatures": list(self.columns),
                                                   "added": self.added, "seconds": self.seconds}, arrays)

    def load(self, path: Path, n_layers: int) -> None:
        header, arrays = load_record(path, kind="progress:theory-grid")
        self.added, self.seconds = header["added"], header["seconds"]
        for T in header["temperatures"]:
            self.gp[T] = {n: (arrays[f"gpmean/{n}/{T:g}"], arrays[f"gpvar/{n}/{T:g}"]) for n in self.names}
            self.columns[T] = {"rows": {}, "U": {}, "pred": {}}
        for row in header["rows"]:
            N, T = row["N"], row["T"]
            col, key = self.columns[T], f"{N:g}_{T:g}"
            col["rows"][N] = row
            if row["converged"]:
                col["U"][N] = tuple(arrays[f"U{l}/{key}"] for l in range(n_layers))
                col["pred"][N] = {n: (arrays[f"mean/{n}/{key}"], arrays[f"var/{n}/{key}"]) for n in self.names}


def _solve(spec, xi, y, inits, callback=None) -> tuple:
    """(Saddle from the first start in `inits` that converges, None) or (None, the last error)."""
    error = None
    for init in inits:
        try:
            return ap.solve_saddle(spec, xi, y, init=init, callback=callback), None
        except (RuntimeError, FloatingPointError) as err:
            error = f"{type(err).__name__}: {err}"
    return None, error


def _predictions(spec, xi, y, sets: dict, U1=None) -> dict:
    out = {}
    for name in ("validation",):
        p = ap.predict(spec, xi, y, sets[name][0], U1)
        out[name] = (p.mean, p.var)
    return out


def _spectral(u: np.ndarray, fn) -> np.ndarray:
    """fn applied to the eigenvalues of the symmetric matrix u (scipy's logm/expm are the general-matrix
    algorithms; logm warns on well-posed but ill-conditioned positive definite input)."""
    w, v = np.linalg.eigh(0.5 * (u + u.T))
    return (v * fn(w)) @ v.T


def log_euclidean(orders: list, weights: list) -> tuple:
    """exp(sum_k w_k log U^(k)) level by level, for order parameters U^(k) = (U_1, ..., U_L) of equal sizes.

    Symmetric positive definite for any real weights: with weights summing to 1 it is a weighted mean (w >= 0)
    or a linear extrapolation of log U, the coordinates in which U stays positive definite along the grid."""
    out = []
    for level in zip(*orders):
        log_u = sum(w * _spectral(np.asarray(u, dtype=np.float64), np.log) for w, u in zip(weights, level))
        out.append(_spectral(log_u, np.exp))
    return tuple(out)


def neighbour_starts(N: float, column: dict, beside: dict) -> list:
    """The starts of the solve at width N, best first, ending with the GP point (None): the plain rule (the
    sweep's along N), the nearest larger solved width of this temperature, or for the largest width the nearest
    solved temperature's solution at N.

    column: {width: U} solved at this temperature (the larger widths: they are solved largest first). beside:
    {width: U} of the nearest solved temperature ({} for the first). Both hold only converged solutions of the
    grid, so the starts depend on the grid alone, never on timing or on a resume.
    """
    a = min((w for w in column if w > N), default=None)
    plain = column[a] if a is not None else beside.get(N)
    return ([] if plain is None else [plain]) + [None]


def _along_width(N: float, column: dict) -> tuple[list, list] | None:
    """(widths, weights) of the polynomial extrapolation in log N of log U to N from the (up to) three nearest
    larger solved widths of `column`: Lagrange's weights prod_{k != j} (ln N - ln a_k) / (ln a_j - ln a_k), which
    sum to 1; None with fewer than two. Two widths a < a2 give the line (1 + r) log U(a) - r log U(a2),
    r = ln(N / a) / ln(a / a2)."""
    larger = sorted(w for w in column if w > N)[:3]
    if len(larger) < 2:
        return None
    x = np.log(np.asarray(larger))
    weights = [float(np.prod([(np.log(N) - x[k]) / (x[j] - x[k]) for k in range(len(x)) if k != j]))
               for j in range(len(x))]
    return larger, weights


def warm_starts(N: float, column: dict, beside: dict) -> list:
    """`neighbour_starts` preceded by a prediction of U(N, T) from the grid's solved cells, where it has them.

    With a < a2 (< a3) the two (three) nearest larger solved widths at this temperature T and T' the nearest solved
    temperature (`beside`), in log U (where every prediction stays positive definite):

    * extrapolation along N corrected along T: the extrapolation from (a, a2, a3) to N at T (a polynomial in
      log N, `_along_width`), plus the error that the same extrapolation made at T' (needs N and the a's solved at
      T');
    * else the extrapolation along N alone (the first temperature);
    * else the parallelogram log U(a, T) + log U(N, T') - log U(a, T') (the second width of a temperature).

    On the paper's one-shot grid the predictions start closer to the solution than the plain neighbour does (in
    the affine-invariant distance, on average about 0.5 against 2.7; benchmarks/oneshot_grid.py); from three
    widths, the median over the cells that have them is 0.13 against 0.24 from two. If a start fails, the next
    one is tried.
    """
    plain = neighbour_starts(N, column, beside)
    along = _along_width(N, column)
    if along is not None:
        widths, weights = along
        orders = [column[w] for w in widths]
        if N in beside and all(w in beside for w in widths):
            orders += [beside[N]] + [beside[w] for w in widths]
            weights = weights + [1.0] + [-w for w in weights]
        return [log_euclidean(orders, weights)] + plain
    a = min((w for w in column if w > N), default=None)
    if a is not None and N in beside and a in beside:
        return [log_euclidean([column[a], beside[N], beside[a]], [1.0, 1.0, -1.0])] + plain
    return plain


def _solve_column(s, grid: _Grid, f: Features, data, T: float, log, bar: GridProgress, starts) -> None:
    spec = theory_spec(s).replace(temperature=T)
    col = {"rows": {}, "U": {}, "pred": {}}
    neighbour = min(grid.columns, key=lambda t: abs(np.log(t / T)), default=None)
    beside = {} if neighbour is None else grid.columns[neighbour]["U"]
    t_col = time.perf_counter()
    for N in reversed(grid.widths):
        t0 = time.perf_counter()
        saddle, error = _solve(spec.with_width(N), data, None, starts(N, col["U"], beside),
                               bar.solving(N=N, T=T))
        bar.done()
        row = {"N": N, "T": T, "converged": saddle is not None, "error": error}
        if saddle is not None:
            col["U"][N] = tuple(np.asarray(u) for u in saddle.U)
            col["pred"][N] = _predictions(saddle.spec, data, None, f.sets, saddle.U1)
            row.update(action=saddle.action, iterations=saddle.iterations, grad_max=saddle.grad_max,
                       min_hessian_eigenvalue=saddle.min_hessian_eigenvalue, U_a=saddle.U_a)
        row["seconds"] = time.perf_counter() - t0
        col["rows"][N] = row
    grid.gp[T] = _predictions(spec, data, None, f.sets)
    grid.columns[T] = col
    grid.seconds += time.perf_counter() - t_col
    val = f.sets["validation"][1]
    accs = ", ".join(f"N={N:g} " + (f"{100 * ap.accuracy(col['pred'][N]['validation'][0], val):.1f}%"
                                     if N in col["pred"] else "failed") for N in grid.widths)
    its = sum(r.get("iterations") or 0 for r in col["rows"].values())
    log(f"  theory T={T:g}: validation {accs}; GP {100 * ap.accuracy(grid.gp[T]['validation'][0], val):.1f}% "
        f"({its} Newton steps, {time.perf_counter() - t_col:.0f} s)")


def choose(rows_by_T: dict, val_acc) -> float | None:
    """The T maximising validation accuracy among converged rows {T: row}; ties: lower action, then lower T."""
    ok = [(T, r) for T, r in rows_by_T.items() if r["converged"]]
    if not ok:
        return None
    return min(ok, key=lambda tr_: (-val_acc(tr_[0]), tr_[1].get("action", 0.0), tr_[0]))[0]


def _edge_chosen(grid: _Grid, f: Features) -> bool:
    top = max(grid.columns)
    y = f.sets["validation"][1]
    for N in grid.widths:
        rows = {T: c["rows"][N] for T, c in grid.columns.items()}
        if choose(rows, lambda T: ap.accuracy(grid.columns[T]["pred"][N]["validation"][0], y)) == top:
            return True
    gp_best = max(grid.gp, key=lambda T: (ap.accuracy(grid.gp[T]["validation"][0], y), -T))
    return gp_best == top


def theory_stage(s: OneShotSettings, f: Features, progress_file: Path, log, starts=None) -> TheoryGrid:
    """The (width x temperature) grid of draw f; resumes from `progress_file` (whole temperatures).

    starts: the rule giving each solve its starts, called as starts(N, column, beside) (`warm_starts`,
    the default, or `neighbour_starts`); it sees only the grid's solved cells, so the results do not depend on
    how the grid was scheduled or resumed.
    """
    starts = warm_starts if starts is None else starts
    grid = _Grid(s, f)
    if progress_file.exists():
        grid.load(progress_file, len(s.heads))
    bar = GridProgress(len(grid.widths) * len(set(s.temperatures) | set(grid.columns)), "theory", s.progress,
                       initial=len(grid.widths) * len(grid.columns))
    log = bar.log(log)
    data = ap.training_data(theory_spec(s), f.train_x, f.train_y)  # the route's form, once for every (N, T)
    for T in sorted(float(t) for t in s.temperatures):
        if T not in grid.columns:
            _solve_column(s, grid, f, data, T, log, bar, starts)
            grid.save(progress_file)
    extra = [float(t) for t in sorted(s.extra_temperatures) if t > max(grid.columns)]
    while extra and _edge_chosen(grid, f):
        T = extra.pop(0)
        if T not in grid.columns:
            grid.added.append(T)
            log(f"  theory: the highest temperature is chosen; adding T = {T:g}")
            bar.add(len(grid.widths))
            _solve_column(s, grid, f, data, T, log, bar, starts)
            grid.save(progress_file)
    bar.close()
    return _finish(grid, f, theory_spec(s).level_sizes)


def _finish(grid: _Grid, f: Features, sizes) -> TheoryGrid:
    Ts, Ns = sorted(grid.columns), grid.widths
    U = [np.full((len(Ns), len(Ts), n, n), np.nan) for n in sizes]
    mean = np.full((len(Ns), len(Ts), len(f.sets["validation"][1])), np.nan)
    var = mean.copy()
    rows = []
    for i, N in enumerate(Ns):
        for j, T in enumerate(Ts):
            col = grid.columns[T]
            rows.append(col["rows"][N])
            for l, u in enumerate(col["U"].get(N, ())):
                U[l][i, j] = u
            if N in col["pred"]:
                mean[i, j], var[i, j] = col["pred"][N]["validation"]
    gp_mean = np.stack([grid.gp[T]["validation"][0] for T in Ts])
    gp_var = np.stack([grid.gp[T]["validation"][1] for T in Ts])
    return TheoryGrid(Ns, Ts, rows, U[0], tuple(U[1:]), mean, var, gp_mean, gp_var, grid.added, grid.seconds)
