"""Experiments: settings -> typed, resumable stages -> results.json -> figures (drawn from results.json only).

Importing this package registers the library's experiments in `base.EXPERIMENTS` (one command each).
"""

from attnpaths.experiments import markov, oneshot  # noqa: F401 (registration)
from attnpaths.experiments.oneshot import study  # noqa: F401 (registration)
from attnpaths.experiments import finite_size, phase_map  # noqa: F401 (registration; Dask, xarray load when run)
