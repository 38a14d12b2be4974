"""The sweep's driver: a grid of cells (theory + GP, optionally posterior samples) run as tasks on Dask.

    grid = Grid.from_toml("grid.toml")
    summary = run_sweep(grid, "results/sweep")                 # a LocalCluster, one worker process per core
    summary = run_sweep(grid, "results/sweep", scheduler="tcp://10.0.0.5:8786", resume=True)
    ds = open_sweep("results/sweep")                            # xarray.Dataset over the grid's axes

How it runs:
* Cells that share their data (every setting but the width and the temperature) share one *problem* task,
  which builds the data, the path features and the training data in its route's form once; Dask keeps it on the
  worker that built it and runs that problem's cells there.
* Along the width axis N a cell depends on the cell of the next larger width and warm-starts from its solution
  (a chain of tasks, largest width first); a failed cell passes on the warm start it was given. Lines of the
  other axes are independent and run in parallel. The warm start of every cell is the same however the sweep is
  scheduled or resumed, so the numbers do not depend on the cluster.
* The driver (this process) writes every cell to the store as it finishes (`store`: atomic per chunk,
  the done flag last). A resumed sweep submits only the cells not stored yet, taking its warm starts from the
  store, and never computes a stored cell again. A failed cell stores its error (and is not retried unless
  `retry_failed`); the other cells go on.
* OUT holds a lock while a sweep writes to it (the lock of a killed sweep is taken over). OUT/grid.toml, the
  grid as `Grid.from_toml` reads it, is written when the sweep starts.

Threads: each worker process should run one thread of XLA/BLAS work (`THREAD_ENV`); the LocalCluster this
module starts sets these variables for its workers, and workers you start yourself need them in their
environment before they import JAX (docs/sweeps.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from attnpaths._src.atomic import write_atomic
from attnpaths._src.sampling.diagnostics import ESS_LIMIT, RHAT_LIMIT, convergence_warning
from attnpaths._src.spec import path_labels
from attnpaths.experiments.runner import OutputLock
from attnpaths.experiments.sweep.grid import WIDTH_AXIS, Grid, axis_labels, grid_toml
from attnpaths.experiments.sweep.store import STORE_NAME, SweepStore, create_store, open_store
from attnpaths.experiments.sweep.tasks import CellResult, SweepTask, compute_cell, failure_text

DASK_LOG = "dask.log"  # OUT/dask.log: what Dask and the LocalCluster's worker processes print

THREAD_ENV = {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
              "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
"""One thread of XLA, OpenMP and BLAS work per worker process (read when the process starts)."""


@dataclass(frozen=True)
class SweepSummary:
    """What a call of `run_sweep` did. cells: the grid's cells; before: stored before this call; computed: cells
    computed now; failed: cells stored with an error (all calls); seconds: wall time of this call."""

    out: Path
    cells: int
    before: int
    computed: int
    failed: int
    seconds: float

    @property
    def store(self) -> Path:
        return self.out / STORE_NAME


# ----------------------------------------------------------------------------------------------------------------
# what runs on the workers
# ----------------------------------------------------------------------------------------------------------------

def build_problem(task: SweepTask, settings, keep_features: bool):
    """A Dask task: the problem shared by the cells with these data settings."""
    return task.build(settings, keep_features)


def run_cell(task: SweepTask, settings, problem, previous, sampling, draws_path) -> CellResult:
    """A Dask task: one cell (see `tasks.compute_cell`)."""
    N = float(getattr(settings, task.width_field)[0])
    T = float(getattr(settings, task.temperature_field))
    spec = problem.spec.with_width(N).replace(temperature=T)
    return compute_cell(problem, spec, previous, sampling, draws_path)


# ----------------------------------------------------------------------------------------------------------------
# the driver
# ----------------------------------------------------------------------------------------------------------------

def _key(prefix: str, data) -> str:
    return f"{prefix}-" + hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _cell_name(index: tuple) -> str:
    return "cell-" + "-".join(map(str, index))


def _lines(grid: Grid) -> dict:
    """Cells grouped by their position on every axis but N; each line sorted by decreasing width."""
    width_pos = list(grid.axes).index(WIDTH_AXIS)
    lines: dict = {}
    for cell in grid.cells():
        rest = cell.index[:width_pos] + cell.index[width_pos + 1:]
        lines.setdefault(rest, []).append(cell)
    for cells in lines.values():
        cells.sort(key=lambda c: -float(c.coords[WIDTH_AXIS]))
    return lines


def _sizes(grid: Grid) -> tuple[list[str], int]:
    """(path names of the largest H, largest packed size sum_l n_l^2) over the networks of the grid (the store's
    extra dims). Networks of different heads have different path names: then the paths are numbered instead."""
    specs, seen = [], set()
    for cell in grid.cells():
        key = tuple((k, v) for k, v in cell.coords.items() if isinstance(v, str))  # where the network can change
        if key not in seen:
            seen.add(key)
            try:
                s = grid.cell_settings(cell.coords)
            except ValueError:
                s = grid.base_settings().updated({k: v for k, v in key})
            specs.append(grid.sweep_task.network(s))
    largest = max(specs, key=lambda s: s.n_paths)
    same = all(s.heads == largest.heads for s in specs)
    names = path_labels(largest.heads) if same else [f"path {k + 1}" for k in range(largest.n_paths)]
    return names, max(sum(n * n for n in s.level_sizes) for s in specs)


def _problem_order(grid: Grid, cell) -> str:
    """Lines whose cells share their data are submitted together (the problem stays on one worker)."""
    try:
        return json.dumps(grid.sweep_task.problem_key(grid.cell_settings(cell.coords)), sort_keys=True)
    except ValueError:
        return ""


def _store_for(grid: Grid, out: Path, resume: bool) -> SweepStore:
    from attnpaths import __version__

    if (out / STORE_NAME).exists():
        if not resume:
            raise ValueError(f"{out} already holds a sweep; continue it with --resume, or start over with "
                             "--overwrite (which moves the old run aside to a sibling folder, deleting nothing), "
                             "or choose another --out")
        return open_store(out, grid.identity())
    path_names, order_size = _sizes(grid)
    return create_store(out, grid.axes, grid.identity(), path_names, order_size, grid.sampling is not None,
                        {"task": grid.task, "grid_file": grid.to_dict(), "version": __version__},
                        axis_labels(grid))


def default_workers() -> int:
    """One worker per core this process may use."""
    return len(available_cores())


def start_client(scheduler: str | None = None, workers: int | None = None, pin: bool | None = None,
                 worker_log=None):
    """A Dask client: connected to `scheduler` (an address), else to a new LocalCluster of `workers` single-threaded
    worker processes (default: one per core) whose environment pins XLA and BLAS to one thread.

    pin: run worker i on the i-th core this process may use, and nowhere else (Linux, at most one worker per
    core). None (default): pin when there is one worker per core, so that the workers share the machine's cores
    without oversubscribing them; fewer workers are left free to use idle cores (and two sweeps started side by
    side do not crowd onto the same first cores).
    worker_log: file that the LocalCluster's worker processes write their standard error to (None: this
    process's)."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ImportError("sweeps need the `sweep` extra (Dask): pip install 'attnpaths[sweep]'") from None
    if scheduler:
        return Client(scheduler)
    n = default_workers() if workers is None else int(workers)
    if n < 1:
        raise ValueError(f"workers must be an int >= 1; got {workers!r}")
    from attnpaths.experiments.sweep.workers import PinToCore, close_client, stderr_to

    cluster = client = None
    try:
        with stderr_to(worker_log):  # a terminal's Ctrl-C makes every worker print a traceback: not here
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                                   env=dict(THREAD_ENV))
        client = Client(cluster)
        cores = available_cores()
        if (n == len(cores) if pin is None else pin) and n <= len(cores) and sys.platform.startswith("linux"):
            # The thread flags alone leave JAX's CPU runtime using ~1.3 cores per worker (measured with
            # getrusage), so workers would compete for cores; one core each makes them single-threaded in fact.
            client.register_plugin(PinToCore(cores), name="attnpaths-pin-to-core")
    except BaseException:
        if cluster is not None:
            close_client(client, True, cluster)
        raise
    return client


def available_cores() -> tuple[int, ...]:
    """The CPU cores this process may run on, sorted."""
    if hasattr(os, "sched_getaffinity"):
        return tuple(sorted(os.sched_getaffinity(0)))
    return tuple(range(os.cpu_count() or 1))


class _Submitter:
    """Submits the pending cells of a grid: one problem task per distinct data, chains of cells along N."""

    def __init__(self, client, grid: Grid, store: SweepStore, out: Path, pending: set):
        self.client, self.grid, self.store, self.out, self.pending = client, grid, store, out, pending
        self.task = grid.sweep_task
        self.token = uuid.uuid4().hex[:8]  # keys unique to this call (a resumed sweep may reuse the client)
        self.problems: dict = {}
        self.futures: dict = {}  # future -> cell index
        self.invalid: dict = {}  # cell index -> error (settings that cannot be built)

    def _problem(self, settings):
        key = self.task.problem_key(settings)
        name = _key("problem", key) + "-" + self.token
        if name not in self.problems:
            self.problems[name] = self.client.submit(build_problem, self.task, settings,
                                                     self.grid.sampling is not None, key=name, pure=False)
        return self.problems[name]

    def _draws_path(self, cell) -> Path | None:
        sampling = self.grid.sampling
        if sampling is None:
            return None
        if sampling.method != "gibbs":
            return None
        return (self.out / "samples" / f"{_cell_name(cell.index)}.npz").resolve()

    def _sampling_for(self, cell):
        s = self.grid.sampling
        if s is None or (s.widths is not None and float(cell.coords[WIDTH_AXIS]) not in s.widths):
            return None
        return s

    def submit_line(self, cells: list) -> None:
        previous = None  # the warm start: None (GP), a stored packed U, or the future of the previous cell
        for cell in cells:
            if cell.index not in self.pending:
                stored = self.store.order_parameters(cell.index)
                previous = stored if stored is not None else previous
                continue
            try:
                settings = self.grid.cell_settings(cell.coords)
            except ValueError as err:
                self.invalid[cell.index] = failure_text(err)
                continue
            future = self.client.submit(run_cell, self.task, settings, self._problem(settings), previous,
                                        self._sampling_for(cell), self._draws_path(cell),
                                        key=f"{_cell_name(cell.index)}-{self.token}", pure=False)
            self.futures[future] = cell.index
            previous = future


def run_sweep(grid: Grid, out, *, client=None, scheduler: str | None = None, workers: int | None = None,
              resume: bool = False, retry_failed: bool = False, progress: bool = True,
              log: Callable[[str], None] = print,
              callback: Callable[[tuple, CellResult], None] | None = None, lock: bool = True) -> SweepSummary:
    """Run (or resume) the sweep of `grid` into folder `out` (see the module docstring).

    Args:
      grid: the grid (`Grid.from_toml`).
      out: output folder; the store is OUT/sweep.zarr, posterior draws (if sampled) OUT/samples/.
      client: a `dask.distributed.Client` to use (not closed); default: one made from `scheduler` / `workers`.
      scheduler: address of a running Dask scheduler (e.g. tcp://10.0.0.5:8786); None: a LocalCluster.
      workers: LocalCluster worker processes (one thread each); None: one per core.
      resume: continue the sweep stored in OUT (the same grid); without it an existing store is refused.
      retry_failed: compute the failed cells of a resumed sweep again.
      progress: show a progress bar over the cells.
      log: where progress lines go.
      callback: called as callback(index, result) after every stored cell.
      lock: take OUT's lock for the sweep; False: the caller holds it (the `Runner` whose stage the sweep is).

    Returns:
      SweepSummary.
    """
    out = Path(out)
    t0 = time.perf_counter()
    with OutputLock(out) if lock else contextlib.nullcontext():
        store = _store_for(grid, out, resume)
        # beside the store from the start (an interrupted sweep says what it was), once the store is known to be
        # this grid's: a refused --out keeps its own grid.toml
        text = grid_toml(grid)
        write_atomic(out / "grid.toml", lambda f: f.write(text.encode()))
        done, errors = store.done(), store.errors()
        if retry_failed:
            for index in zip(*(errors != "").nonzero()):
                store.clear(tuple(int(i) for i in index))
            done = store.done()
        before = int(done.sum())
        pending = {c.index for c in grid.cells() if not done[c.index]}
        log(f"sweep {grid.task}: {grid.size} cells ({' x '.join(f'{k} {len(v)}' for k, v in grid.axes.items())}), "
            f"{before} stored before, {len(pending)} to compute; store {store.path}")
        computed = 0
        if pending:
            own = client is None
            from attnpaths.experiments.sweep.workers import close_client, dask_logging_to

            with dask_logging_to(out / DASK_LOG if own else None):
                client = start_client(scheduler, workers, worker_log=out / DASK_LOG) if own else client
                interrupted = True
                try:
                    computed = _run_pending(client, grid, store, out, pending, before, progress, callback)
                    interrupted = False
                finally:
                    if own:
                        close_client(client, interrupted)
        failed = int((store.errors() != "").sum())
    summary = SweepSummary(out, grid.size, before, computed, failed, time.perf_counter() - t0)
    log(f"sweep done: {summary.computed} cells computed in {summary.seconds:.1f} s, {summary.failed} failed "
        f"(errors in the store's `error` variable)")
    if grid.sampling is not None:
        warning = sampling_warning(store)
        if warning:
            log(warning)
    return summary


def sampling_warning(store: SweepStore) -> str:
    """The convergence warning of the sampled cells that fail R-hat or ESS (worst values over them), or ''."""
    rhat, ess = store.arrays["max_rhat"][...], store.arrays["min_ess"][...]
    bad = (rhat > RHAT_LIMIT) | (ess < ESS_LIMIT)
    if not bad.any():
        return ""
    where = f"in {int(bad.sum())} of {int(np.isfinite(rhat).sum())} sampled cells (the store's max_rhat, min_ess)"
    return convergence_warning(float(np.nanmax(rhat[bad])), float(np.nanmin(ess[bad])), where,
                               ("[sampling] n_samples", "n_warmup", "n_chains"))


def _run_pending(client, grid: Grid, store: SweepStore, out: Path, pending: set, before: int, progress: bool,
                 callback) -> int:
    from dask.distributed import as_completed
    from tqdm.auto import tqdm

    submitter = _Submitter(client, grid, store, out, pending)
    for cells in sorted(_lines(grid).values(), key=lambda cells: _problem_order(grid, cells[0])):
        submitter.submit_line(cells)
    submitter.problems.clear()  # the scheduler keeps each problem until its last cell has run
    bar = tqdm(total=grid.size, initial=before, unit="cell", disable=not progress, desc="sweep")
    computed = 0
    try:
        for index, error in submitter.invalid.items():
            result = CellResult({}, error, None, 0.0)
            store.write(index, result)
            computed += 1
            bar.update()
            if callback is not None:
                callback(index, result)
        for future in as_completed(list(submitter.futures)):
            index = submitter.futures.pop(future)
            try:
                result = future.result()
            except Exception as err:  # noqa: BLE001 (the problem task failed, or a worker died)
                result = CellResult({}, failure_text(err), None, 0.0)
            store.write(index, result)
            computed += 1
            bar.update()
            if callback is not None:
                callback(index, result)
    finally:
        bar.close()
        if submitter.futures:
            client.cancel(list(submitter.futures))
    return computed
