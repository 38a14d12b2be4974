"""`attnpaths sweep`: a grid of cells (theory + GP, optionally posterior samples) run as tasks on Dask, stored
cell by cell in a labelled zarr store.

    grid = Grid.from_toml("grid.toml")
    summary = run_sweep(grid, "results/sweep")     # resumable; see `run` for how cells are scheduled
    ds = open_sweep("results/sweep")                # xarray.Dataset over the grid's axes

The data flow, one module each:

    grid.py      grid.toml -> Grid: a task, its fixed settings, the axes (checked before anything runs)
    tasks.py     SWEEP_TASKS (name -> SweepTask) and what one cell computes (`compute_cell`); the sweep knows
                 tasks only through this registry (an experiment registers its own, e.g. `markov`)
    run.py       the driver: problems and chains of cells submitted to Dask, every finished cell stored
    store.py     OUT/sweep.zarr: the N-D store, atomic per cell, `open_sweep`
    workers.py   what runs inside Dask's worker processes (pinning to cores, quiet shutdown; needs Dask)
    command.py   the `attnpaths sweep GRID` command: its options, claiming OUT, calling `run_sweep`
"""

from attnpaths.experiments.sweep.command import SweepOptions, sweep_command
from attnpaths.experiments.sweep.grid import Grid, grid_toml
from attnpaths.experiments.sweep.run import (DASK_LOG, THREAD_ENV, SweepSummary, available_cores, default_workers,
                                             run_sweep, sampling_warning, start_client)
from attnpaths.experiments.sweep.store import STORE_NAME, open_sweep
from attnpaths.experiments.sweep.tasks import (SWEEP_TASKS, CellResult, FeatureSettings, Problem, SweepTask,
                                               compute_cell, save_path_features)

__all__ = ["DASK_LOG", "STORE_NAME", "SWEEP_TASKS", "THREAD_ENV", "CellResult", "FeatureSettings", "Grid", "Problem",
           "SweepOptions", "SweepSummary", "SweepTask", "available_cores", "compute_cell", "default_workers",
           "grid_toml", "open_sweep", "run_sweep", "sampling_warning", "save_path_features", "start_client",
           "sweep_command"]
