"""Stages `train` and `gd` of the one-shot experiment: the gradient-descent network (spec E.2) and its accuracies.

Training draws fresh episodes of the training classes at every step, validates every `eval_every` steps on
`n_eval` held-out-class episodes and keeps the best weights; its checkpoint (a "training-checkpoint" record,
OUT/stages/train.partial.npz) is written at every validation, so a killed run resumes (`--resume`) to bitwise the
same weights. JAX runs it on a GPU when it finds one (no code change).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np

from attnpaths._src import training as tr
from attnpaths.experiments.oneshot.data import EpisodeSets
from attnpaths.experiments.oneshot.settings import OneShotSettings


def architecture(s: OneShotSettings) -> tr.Architecture:
    return tr.Architecture(s.token_dim, tuple(s.heads), s.gd_width, s.qk_dim, s.dtype)


def train_config(s: OneShotSettings) -> tr.TrainConfig:
    return tr.TrainConfig(steps=s.train_steps, batch_size=s.batch_size, learning_rate=s.learning_rate,
                          weight_decay=s.weight_decay, seed=s.seed, eval_every=s.eval_every, optimizer=s.optimizer,
                          schedule=s.lr_schedule, warmup_steps=s.warmup_steps, ema=s.ema,
                          snapshots=s.keep_snapshots)


@dataclass(frozen=True)
class TrainedNetwork:
    """Output of stage `train`."""

    params: tuple[np.ndarray, ...]  # leaves of the best `Params` (jax.tree_util order)
    architecture: dict
    curve: dict  # step, train_loss, train_accuracy, val_loss, val_accuracy (one entry per validation)
    best_step: int
    best_validation_accuracy: float
    steps: int
    seconds: float  # wall time of the training steps in the call that finished them
    seconds_per_step: float  # measured in that call (excludes compilation of the first step)
    device: str
    data: str  # fingerprint of the images and episodes it was trained and validated on
    snapshot_steps: list = dataclasses.field(default_factory=list)  # with keep_snapshots: every validation's step
    snapshot_params: tuple[np.ndarray, ...] = ()  # their weights' leaves, snapshot after snapshot

    def weights(self) -> tr.Params:
        a = self.architecture
        arch = tr.Architecture(a["input_width"], tuple(a["heads"]), a["width"], a["qk_dim"], a["dtype"])
        _, treedef = jax.tree_util.tree_flatten(tr.init_params(arch))
        return jax.tree_util.tree_unflatten(treedef, [jax.numpy.asarray(p) for p in self.params])

    def at_step(self, step: int) -> "TrainedNetwork":
        """This network with the weights it had after `step` steps (a validation step of a run with
        keep_snapshots) in place of the best ones."""
        if step not in self.snapshot_steps:
            raise ValueError(f"step must be one of the kept snapshots' steps {self.snapshot_steps}; got {step!r} "
                             "(train with keep_snapshots = true)")
        k, n = self.snapshot_steps.index(step), len(self.params)
        val = dict(zip(self.curve["step"], self.curve["val_accuracy"]))[step]
        return dataclasses.replace(self, params=self.snapshot_params[k * n:(k + 1) * n], best_step=int(step),
                                   best_validation_accuracy=float(val), snapshot_steps=[], snapshot_params=())


def train_stage(s: OneShotSettings, episodes: EpisodeSets, checkpoint: Path, resume: bool, progress: bool,
                log) -> TrainedNetwork:
    arch, config = architecture(s), train_config(s)
    val = episodes.validation
    start = tr.load_checkpoint(checkpoint, arch).step if resume and checkpoint.exists() else 0
    log(f"train: {arch.heads} heads, width {arch.width}, G {arch.qk_dim}, {arch.dtype}, batch {s.batch_size}, "
        f"steps {start} -> {s.train_steps} (fresh episodes every step), validation every {s.eval_every} steps "
        f"on {s.n_eval} episodes; device {jax.devices()[0].platform}")
    t0 = time.perf_counter()
    res = tr.train(arch, episodes.training, config, validation=(val.x[:s.n_eval], val.y[:s.n_eval]),
                   checkpoint=checkpoint, resume=resume, progress=progress)
    seconds = time.perf_counter() - t0
    done = max(s.train_steps - start, 1)
    curve = res.curve.to_dict()
    best = float(np.max(curve["val_accuracy"])) if curve["val_accuracy"] else float("nan")
    log(f"train: best validation accuracy {100 * best:.1f}% at step {res.best_step} of {res.step}; "
        f"{seconds:.0f} s ({seconds / done:.3f} s per step)")
    snaps = tuple(np.asarray(p) for _, w in res.snapshots for p in jax.tree_util.tree_leaves(w))
    return TrainedNetwork(tuple(np.asarray(p) for p in jax.tree_util.tree_leaves(res.params)), arch.to_dict(),
                          curve, int(res.best_step), best, int(res.step), seconds, seconds / done,
                          jax.devices()[0].platform, episodes.fingerprint(), [int(k) for k, _ in res.snapshots],
                          snaps)


@dataclass(frozen=True)
class NetworkAccuracy:
    """Output of stage `gd`: the trained network's sign accuracy on every evaluation set."""

    accuracy: dict  # set name -> accuracy
    theory_train_accuracy: float  # on the first draw of the theory's P examples


def gd_stage(s: OneShotSettings, episodes: EpisodeSets, net: TrainedNetwork, log) -> NetworkAccuracy:
    params = net.weights()
    acc = {name: tr.gd_accuracy(params, e.x, e.y) for name, e in episodes.evaluation_sets().items()}
    theory = episodes.theory_train(s, 0)
    out = NetworkAccuracy(acc, tr.gd_accuracy(params, theory.x, theory.y))
    log("gd network: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in acc.items()))
    return out
