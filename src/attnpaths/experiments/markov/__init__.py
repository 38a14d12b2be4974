"""Experiment 1 (spec D, Fig. 2): the hidden Markov chain task, one folder.

settings.py     MarkovSettings, the presets, and the problem they build (network, data, path features)
stages.py       the stages gp, theory, alignment, samples; run_markov; attnpaths sample for Markov runs; the
                `markov` command's registration
figures.py      the figures, drawn from results.json only (matplotlib loads when a run draws them)
sweep_task.py   the sweep's `markov` task

Importing the package registers the experiment and its sweep task; the names below are those of the former
module `attnpaths.experiments.markov`.
"""

from attnpaths.experiments.markov.settings import (DEFAULT_SAMPLE_WIDTHS, PRESETS, MarkovProblem, MarkovSettings,
                                                   markov_problem)
from attnpaths.experiments.markov.stages import (N_ALIGNMENT_PCS, SAMPLE_COLUMNS, THEORY_COLUMNS, Alignment,
                                                 GPAccuracies, Samples, TheorySweep, add_markov_samples,
                                                 alignment_stage, gp_stage, markov_results, markov_table,
                                                 run_markov, samples_stage, theory_stage)
from attnpaths.experiments.markov import sweep_task  # noqa: F401 (registers the sweep's markov task)

__all__ = ["Alignment", "DEFAULT_SAMPLE_WIDTHS", "GPAccuracies", "MarkovProblem", "MarkovSettings",
           "N_ALIGNMENT_PCS", "PRESETS", "SAMPLE_COLUMNS", "Samples", "THEORY_COLUMNS", "TheorySweep",
           "add_markov_samples", "alignment_stage", "gp_stage", "markov_problem", "markov_results", "markov_table",
           "run_markov", "samples_stage", "theory_stage"]
