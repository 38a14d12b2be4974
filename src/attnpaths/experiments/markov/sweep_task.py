"""The sweep's `markov` task: the sweep reaches experiment 1 only through its task registry (`SWEEP_TASKS`)."""

from __future__ import annotations

import numpy as np

from attnpaths._src.routes import training_data
from attnpaths._src.tasks.markov import markov_network
from attnpaths.experiments.markov.settings import PRESETS, MarkovSettings, markov_problem
from attnpaths.experiments.sweep.tasks import SWEEP_TASKS, Problem, SweepTask


def _sweep_problem(s: MarkovSettings, keep_features: bool) -> Problem:
    p = markov_problem(s)
    spec = p.network.spec.replace(temperature=s.temperature)
    data = training_data(spec, p.xi, p.train.y)
    return Problem(spec, data, np.asarray(p.xi) if keep_features else None, np.asarray(p.train.y),
                   np.asarray(p.xi_test), np.asarray(p.test.y))


def _sweep_network(s: MarkovSettings):
    return markov_network(s.network).spec


SWEEP_TASKS.register("markov", SweepTask(
    "markov", MarkovSettings, _sweep_problem, _sweep_network, presets=PRESETS, even_examples=True,
    excluded=dict.fromkeys(("samples", "sample_widths", "n_samples", "n_chains", "n_warmup", "seed", "method"),
                           "the sweep samples through its [sampling] table")))
