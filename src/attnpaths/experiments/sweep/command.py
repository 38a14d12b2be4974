"""The sweep as a stage of an experiment's `Runner` (`sweep_stage`, whose output is the zarr store), and the
`attnpaths sweep GRID` command: its options, the grid written back as TOML, and the call of `run_sweep`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from attnpaths.experiments.outputs import claim_output
from attnpaths.experiments.sampling import NO_POSTERIOR, NoPosterior
from attnpaths.experiments.settings import Settings, at_least, setting
from attnpaths.experiments.sweep.grid import Grid, grid_toml
from attnpaths.experiments.sweep.run import run_sweep


@dataclass(frozen=True)
class StoredSweep:
    """The output of a sweep stage: the zarr store it completed, which stays where the sweep wrote it (OUT/store,
    the path relative to OUT), with its count of cells and of failed cells (their errors are in the store)."""

    store: str
    cells: int
    failed: int


def sweep_stage(grid: Grid, out, *, scheduler: str | None, workers: int | None, resume: bool, progress: bool,
                log, retry_failed: bool = False) -> StoredSweep:
    """Run (or continue, with `resume`) the sweep of `grid` into OUT as a stage of the `Runner` that holds OUT's
    lock: the store is written cell by cell as before (a resumed sweep never computes a stored cell again), and
    the stage's record says it is complete."""
    summary = run_sweep(grid, out, scheduler=scheduler, workers=workers, resume=resume, progress=progress,
                        log=log, lock=False, retry_failed=retry_failed)
    return StoredSweep(str(summary.store.relative_to(Path(out))), summary.cells, summary.failed)


@dataclass(frozen=True)
class GridRun:
    """A grid as the settings of a `Runner` run (what `attnpaths sweep` stores in OUT/run.npz and settings.toml)."""

    grid: Grid

    def identity(self) -> dict:
        return self.grid.identity()

    def to_dict(self) -> dict:
        return self.grid.to_dict()

    def to_toml(self) -> str:
        return grid_toml(self.grid)


@dataclass(frozen=True)
class SweepOptions(Settings):
    """Options of `attnpaths sweep GRID` (where and how it runs; the grid file says what it computes)."""

    out: str = setting("results/sweep", "output folder: the store OUT/sweep.zarr, OUT/grid.toml, OUT/samples/")
    scheduler: str | None = setting(None, "address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786 "
                                    "(none: start a LocalCluster)")
    workers: int | None = setting(None, "worker processes of the LocalCluster, one thread each (none: one per "
                                  "core)", check=at_least(1))
    retry_failed: bool = setting(False, "compute the failed cells of a resumed sweep again")
    progress: bool = setting(True, "show a progress bar over the cells")


def sweep_command(grid_file, options: SweepOptions, overrides=(), resume: bool = False,
                  print_settings: bool = False, log=print, overwrite: bool = False) -> StoredSweep | None:
    """`attnpaths sweep GRID`: read the grid, run or resume the sweep (which writes OUT/grid.toml first) as the one
    stage, `sweep`, of a `Runner` run. An OUT that holds a run is refused unless `resume` (continue it) or
    `overwrite` (move it aside first; see `claim_output`)."""
    from attnpaths.experiments.runner import Runner

    grid = Grid.from_toml(grid_file, overrides)
    text = grid_toml(grid)
    if print_settings:
        print(text, end="")
        return None
    claim_output(options.out, resume, overwrite, log)
    with Runner(options.out, "sweep", GridRun(grid), resume, log) as run:
        # run again when resumed: the store knows which cells are done (and retry_failed clears the failed ones)
        return run.stage("sweep", sweep_stage, grid, run.out, scheduler=options.scheduler, workers=options.workers,
                         resume=run.resume, progress=options.progress, log=log, retry_failed=options.retry_failed,
                         rerun=True)


NO_POSTERIOR.register("sweep", NoPosterior(
    "a sweep (`attnpaths sweep`), which has no posterior to sample",
    "a sweep samples in its cells when its grid file has a [sampling] table (docs/sweeps.md): add one and run "
    "`attnpaths sweep GRID` into a new --out. To sample one network, run "
    "`attnpaths markov --widths N --samples` (then `attnpaths sample` on that run adds more)"))
