"""Experiments: settings -> typed, resumable stages -> results.json -> figures (drawn from results.json only).

Importing this package registers the library's experiments in `base.EXPERIMENTS` (one command each).
"""

from attnpaths.experiments import markov, oneshot  # noqa: F401 (registration)
from attnpaths.experiments.oneshot import strength, study  # noqa: F401 (registration)
from attnpaths.experiments import finite_size, phase_map  # noqa: F401 (registration; Dask, xarray load when run)

# The extension points of the experiments, under public names: register your own and it appears among the
# command line's choices.
from attnpaths._src.registry import Registry  # noqa: E402
from attnpaths._src.tasks.markov import MARKOV_NETWORKS  # noqa: E402
from attnpaths._src.tasks.sources import DATA_SOURCES  # noqa: E402
from attnpaths.experiments.base import EXPERIMENTS, Experiment  # noqa: E402
from attnpaths.experiments.sampling import SAMPLERS  # noqa: E402
from attnpaths.experiments.settings import Settings, register_preset, setting  # noqa: E402

__all__ = ["DATA_SOURCES", "EXPERIMENTS", "Experiment", "MARKOV_NETWORKS", "Registry", "SAMPLERS", "Settings",
           "register_preset", "setting"]
