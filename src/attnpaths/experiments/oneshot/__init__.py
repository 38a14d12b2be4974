"""Experiment 2 (spec E, Fig. 3): one-shot image classification as typed, resumable stages.

settings.py   OneShotSettings and the presets (paper, cpu, quick)
data.py       the episode sets of a run (fresh training episodes, validation, two test protocols, OOD)
train.py      stages train, gd: the gradient-descent network
theory.py     stage theory.d<k>: the (width x temperature) grid on the trained heads
compare.py    stages headroom.d<k>, claim.d<k>: GP, path subsets, U_GD, theory; Delta(N) with statistics
analyses.py   stages samples, order, alignment, heads, ood (Fig. 3 c-f)
run.py        run_oneshot (the pipeline), attnpaths sample for one-shot runs
study.py      the multi-seed study (seeds x draws of the theory examples)
strength.py   the claim at checkpoints of the training, against the network's accuracy (oneshot-strength)
figures.py    the figures of both commands, drawn from results.json only
"""

from attnpaths.experiments.oneshot.run import run_oneshot
from attnpaths.experiments.oneshot.settings import PRESETS, OneShotSettings

__all__ = ["OneShotSettings", "PRESETS", "run_oneshot"]
