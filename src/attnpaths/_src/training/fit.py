"""Training the network of `model.py` by minibatch Adam on the MSE (spec E.2), resumable, with validation.

The optimiser is named in `TrainConfig.optimizer`, an entry of the `OPTIMIZERS` registry of `optim.py`
("adam_l2", the paper's: weight decay as L2 on the gradient; "adamw": decoupled), with an optional learning-rate
schedule (`TrainConfig.schedule`, registry `SCHEDULES`).

Batches come from a `BatchSource`: `ArrayBatches` cycles through a fixed training set (a fresh permutation per
epoch); a task can instead draw fresh examples at every step (the one-shot task draws fresh episodes, see
`attnpaths._src.tasks.oneshot.EpisodeBatches`). A batch is a pure function of (seed, step), so a resumed run sees
the very batches an uninterrupted one would.

Every `eval_every` steps the network is evaluated on a fixed validation set and the weights with the best
validation accuracy so far are kept (spec E.2: "best checkpoint by validation accuracy"). The training curve
(minibatch loss and accuracy averaged over each interval, validation loss and accuracy) is returned and saved.

Checkpoints are records of the package's one persistence format (`attnpaths._src.store`, kind
"training-checkpoint"): the weights, the optimiser state, the best weights, the step and the curves, written
atomically every `checkpoint_every` steps, so a killed run resumes (`resume=True`) to bitwise the same weights.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import optax

from attnpaths._src.checks import as_float_array
from attnpaths._src.store import data_hash, load_record, save_record
from attnpaths._src.training.model import (Architecture, Params, check_targets, gd_output, init_params,
                                           output_with_gates)
from attnpaths._src.training.optim import OPTIMIZERS, SCHEDULES, make_optimizer

CHECKPOINT_KIND = "training-checkpoint"
SNAPSHOT_KIND = "training-snapshot"


class BatchSource(Protocol):
    """Where training minibatches come from.

    input_width: N0 of the inputs.
    fingerprint(): a string identifying the data (stored in checkpoints; a resume on other data is refused).
    batch(seed, step, size): the minibatch (x (size, N0, T), y (size,)) of that step, a pure function of its
      arguments.
    """

    input_width: int

    def fingerprint(self) -> str: ...

    def batch(self, seed: int, step: int, size: int) -> tuple[np.ndarray, np.ndarray]: ...


class ArrayBatches:
    """Minibatches from a fixed training set: epoch e = step // (P // size) uses the permutation of (seed, e);
    the last incomplete batch of an epoch is skipped."""

    def __init__(self, x, y):
        self.x = as_float_array("x", x, ndim=3)
        self.y = check_targets(y, self.x.shape[0])
        self.input_width = self.x.shape[1]

    def fingerprint(self) -> str:
        return data_hash(self.x, self.y)

    def batch(self, seed: int, step: int, size: int):
        n = self.x.shape[0]
        size = min(size, n)
        epoch, i = divmod(step, n // size)
        idx = np.random.default_rng([seed, epoch]).permutation(n)[i * size:(i + 1) * size]
        return self.x[idx], self.y[idx]


def _nonneg_int(name, v, minimum=0) -> int:
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {v!r}")
    return int(v)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings.

    steps: number of optimiser steps.
    batch_size: examples per minibatch.
    learning_rate, weight_decay: of the optimiser (Adam's b1 0.9, b2 0.999, eps 1e-8).
    optimizer: a name in `OPTIMIZERS`: "adam_l2" (the paper's: L2 on the gradient) or "adamw" (decoupled).
    schedule: a name in `SCHEDULES`: "constant" or "warmup_cosine" (warm-up over `warmup_steps`, then cosine to 0
      at `steps`; such a run resumes only with the same `steps`).
    warmup_steps: steps of linear warm-up (schedules that use it).
    seed: seed of the initialisation and of the minibatches.
    eval_every: validate every this many steps (and at the last step); 0: only at the last step.
    checkpoint_every: write the checkpoint every this many steps (0: at every validation); needs a path.
    ema: decay of an exponential moving average of the weights (Polyak averaging, `optax.incremental_update`,
      started from the initial weights, no bias correction); 0: off. When on, validation, the kept best weights
      and the snapshots are the averaged weights, which the optimiser never sees.
    snapshots: keep the weights of every validation (`TrainResult.snapshots`, stored in the checkpoint), e.g. to
      study a quantity against training progress.
    """

    steps: int = 2000
    batch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 5e-5
    seed: int = 0
    eval_every: int = 0
    checkpoint_every: int = 0
    optimizer: str = "adamw"
    schedule: str = "constant"
    warmup_steps: int = 0
    ema: float = 0.0
    snapshots: bool = False

    def __post_init__(self):
        _nonneg_int("steps", self.steps, 1)
        _nonneg_int("batch_size", self.batch_size, 1)
        if not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool):
            raise ValueError(f"seed must be an int; got {self.seed!r}")
        _nonneg_int("eval_every", self.eval_every)
        _nonneg_int("checkpoint_every", self.checkpoint_every)
        for name in ("learning_rate", "weight_decay"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0; got {v!r}")
        if self.learning_rate == 0:
            raise ValueError("learning_rate must be > 0")
        if not (isinstance(self.ema, (int, float)) and not isinstance(self.ema, bool) and 0 <= self.ema < 1):
            raise ValueError(f"ema must be a number in [0, 1) (the decay of the weight average; 0: off); got "
                             f"{self.ema!r}")
        if not isinstance(self.snapshots, (bool, np.bool_)):
            raise ValueError(f"snapshots must be a bool; got {self.snapshots!r}")
        OPTIMIZERS[self.optimizer]
        SCHEDULES[self.schedule]
        _nonneg_int("warmup_steps", self.warmup_steps)
        if self.warmup_steps > self.steps:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) must be <= steps ({self.steps})")

    def optimizer_args(self) -> tuple:
        """The arguments of `make_optimizer` (hashable: the jitted step is cached on them)."""
        return (self.optimizer, self.learning_rate, self.weight_decay, self.schedule, self.warmup_steps,
                self.steps if self.schedule != "constant" else 0)

    def transformation(self) -> optax.GradientTransformation:
        """The optax optimiser these settings name."""
        return make_optimizer(*self.optimizer_args())

    def eval_steps(self) -> set[int]:
        """The steps (1-based counts of steps done) after which the network is validated."""
        every = self.eval_every or self.steps
        return set(range(every, self.steps + 1, every)) | {self.steps}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class Curve(NamedTuple):
    """Training curve, one entry per validation (all (n_evals,)).

    step: steps done. train_loss, train_accuracy: minibatch MSE and sign accuracy averaged since the previous
    validation (before each update). val_loss, val_accuracy: on the validation set (NaN without one).
    """

    step: np.ndarray
    train_loss: np.ndarray
    train_accuracy: np.ndarray
    val_loss: np.ndarray
    val_accuracy: np.ndarray

    def to_dict(self) -> dict:
        return {k: np.asarray(v).tolist() for k, v in self._asdict().items()}


class TrainResult(NamedTuple):
    """params: the weights with the best validation accuracy (the final ones without validation).
    final_params: the weights after the last step. losses: (steps,) minibatch loss before each step.
    curve: the training curve. best_step: steps done when `params` were taken. step: steps done.
    snapshots: with config.snapshots, ((steps done, weights) at every validation, in order); else ().
    With config.ema > 0, `params` and the snapshots are averaged weights; `final_params` are the optimiser's."""

    params: Params
    final_params: Params
    losses: np.ndarray
    curve: Curve
    best_step: int
    step: int
    snapshots: tuple = ()


class Checkpoint(NamedTuple):
    params: Params
    opt_state: object
    best_params: Params
    step: int
    best_step: int
    best_accuracy: float
    losses: np.ndarray
    accuracies: np.ndarray
    curve: Curve
    architecture: Architecture
    config: TrainConfig
    data: str
    average: Params | None = None  # the weight average (config.ema > 0)
    snapshots: tuple = ()  # ((step, weights), ...) with config.snapshots


def _mse_and_accuracy(params, x, y, gates, scales):
    f = output_with_gates(params, x, gates, scales)
    return jnp.mean((f - y.astype(f.dtype)) ** 2), jnp.mean(jnp.sign(f) == y)


@functools.lru_cache(maxsize=16)
def _make_step(optimizer_args: tuple, heads: tuple, ema: float = 0.0):
    """The jitted optimiser step (cached so that repeated runs with the same settings compile once); it also
    moves the weight average by (1 - ema) towards the new weights (unused when ema = 0)."""
    optimizer = make_optimizer(*optimizer_args)
    gates = tuple(jnp.ones(h) for h in heads)
    scales = tuple(1.0 / math.sqrt(h) for h in heads)

    @jax.jit
    def step(params, opt_state, average, xb, yb):
        (value, acc), grads = jax.value_and_grad(_mse_and_accuracy, has_aux=True)(params, xb, yb, gates, scales)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        if ema:
            average = optax.incremental_update(params, average, 1.0 - ema)
        return params, opt_state, average, value, acc

    return step


# ----------------------------------------------------------------------------------------------------------------
# checkpoints
# ----------------------------------------------------------------------------------------------------------------

def _leaves(prefix: str, tree) -> dict:
    return {f"{prefix}.{i}": np.asarray(v) for i, v in enumerate(jax.tree_util.tree_leaves(tree))}


def _restore(prefix: str, template, arrays: dict, path):
    leaves, treedef = jax.tree_util.tree_flatten(template)
    out = []
    for i, ref in enumerate(leaves):
        a = arrays.get(f"{prefix}.{i}")
        if a is None or a.shape != np.shape(ref) or a.dtype != np.asarray(ref).dtype:
            got = "missing" if a is None else f"{a.shape} {a.dtype}"
            raise ValueError(f"{path}: {prefix} entry {i} is {got}; expected {np.shape(ref)} "
                             f"{np.asarray(ref).dtype}")
        out.append(jnp.asarray(a))
    return jax.tree_util.tree_unflatten(treedef, out)


def snapshot_folder(path) -> Path:
    """The folder beside checkpoint `path` (e.g. train.partial.npz -> train.partial.snapshots/) that holds the kept
    snapshots, one file per validation step, each written once: a checkpoint that held them all was rewritten
    whole at every validation (quadratic in the validations)."""
    path = Path(path)
    return path.with_name(path.name.removesuffix(".npz") + ".snapshots")


def _snapshot_path(path, step: int) -> Path:
    return snapshot_folder(path) / f"step{int(step)}.npz"


def save_checkpoint(path, ck: Checkpoint) -> None:
    """Write a checkpoint record to `path` atomically (kind "training-checkpoint"). The kept snapshots go to
    `snapshot_folder(path)`: the one taken at this step, and any whose file is missing; the others were written
    when they were taken."""
    arrays = {**_leaves("params", ck.params), **_leaves("opt", ck.opt_state), **_leaves("best", ck.best_params),
              "losses": np.asarray(ck.losses, dtype=np.float64),
              "accuracies": np.asarray(ck.accuracies, dtype=np.float64)}
    if ck.average is not None:
        arrays.update(_leaves("ema", ck.average))
    for step, weights in ck.snapshots:
        snap = _snapshot_path(path, step)
        if step == ck.step or not snap.exists():  # before the checkpoint that lists it: a kill leaves no gap
            snap.parent.mkdir(parents=True, exist_ok=True)
            save_record(snap, SNAPSHOT_KIND, {"step": int(step), "data": ck.data}, _leaves("snap", weights))
    header = {"step": ck.step, "best_step": ck.best_step, "best_accuracy": ck.best_accuracy,
              "architecture": ck.architecture.to_dict(), "config": ck.config.to_dict(), "data": ck.data,
              "curve": ck.curve.to_dict(), "snapshot_steps": [int(s) for s, _ in ck.snapshots]}
    save_record(path, CHECKPOINT_KIND, header, arrays)


def _differences(saved: dict, wanted: dict) -> str:
    return "; ".join(f"{k}: checkpoint {saved.get(k)!r}, requested {wanted.get(k)!r}"
                     for k in sorted(set(saved) | set(wanted)) if saved.get(k) != wanted.get(k))


def _load_snapshot(path, k: int, step: int, template, arrays: dict, data: str):
    """The k-th kept snapshot (taken at `step`) of checkpoint `path`: from its own file, or from the checkpoint's
    arrays (checkpoints written before the snapshots had files of their own)."""
    snap = _snapshot_path(path, step)
    if not snap.exists() and f"snap{k}.0" in arrays:
        return _restore(f"snap{k}", template, arrays, path)
    if not snap.exists():
        raise ValueError(f"checkpoint {path} lists a snapshot at step {step} but {snap} is missing")
    header, snap_arrays = load_record(snap, kind=SNAPSHOT_KIND)
    if header.get("step") != step or header.get("data") != data:
        raise ValueError(f"{snap} holds the snapshot of another training (step {header.get('step')}, data "
                         f"{header.get('data')!r}) than checkpoint {path} lists (step {step}, data {data!r})")
    return _restore("snap", template, snap_arrays, snap)


def load_checkpoint(path, architecture: Architecture | None = None) -> Checkpoint:
    """Read a checkpoint written by `train`.

    Raises FileNotFoundError if it does not exist; ValueError naming the file when it is truncated, corrupt or
    not a training checkpoint, and naming the fields when `architecture` is given and differs.
    """
    header, arrays = load_record(path, kind=CHECKPOINT_KIND)
    try:
        a = header["architecture"]
        saved = Architecture(a["input_width"], tuple(a["heads"]), a["width"], a["qk_dim"], a["dtype"])
        config = TrainConfig(**header["config"])
        curve = Curve(*(np.asarray(header["curve"][k], dtype=np.float64) for k in Curve._fields))
    except (KeyError, TypeError) as err:
        raise ValueError(f"{path} is not a complete training checkpoint (missing {err})") from None
    if architecture is not None and architecture != saved:
        raise ValueError(f"checkpoint {path} was written for another architecture "
                         f"({_differences(saved.to_dict(), architecture.to_dict())})")
    template = init_params(saved)
    params = _restore("params", template, arrays, path)
    best = _restore("best", template, arrays, path)
    opt_state = _restore("opt", config.transformation().init(template), arrays, path)
    average = _restore("ema", template, arrays, path) if config.ema else None
    snapshots = tuple((int(s), _load_snapshot(path, k, int(s), template, arrays, header["data"]))
                      for k, s in enumerate(header.get("snapshot_steps", [])))
    return Checkpoint(params, opt_state, best, int(header["step"]), int(header["best_step"]),
                      float(header["best_accuracy"]), arrays["losses"], arrays["accuracies"], curve, saved, config,
                      header["data"], average, snapshots)


# ----------------------------------------------------------------------------------------------------------------
# the loop
# ----------------------------------------------------------------------------------------------------------------

def _resume_from(path, arch: Architecture, config: TrainConfig, data: str) -> Checkpoint:
    ck = load_checkpoint(path, arch)
    # a constant learning rate lets a run be extended; a schedule is a function of the total steps
    free = {"steps"} if config.schedule == "constant" else set()
    same = {k: v for k, v in config.to_dict().items() if k not in free}
    old = {k: v for k, v in ck.config.to_dict().items() if k not in free}
    if same != old:
        raise ValueError(f"cannot resume {path}: the training settings differ ({_differences(old, same)})")
    if ck.data != data:
        raise ValueError(f"cannot resume {path}: it was trained on other data")
    if ck.step > config.steps:
        raise ValueError(f"checkpoint {path} is at step {ck.step} > config.steps = {config.steps}")
    return ck


def _validate(params, validation) -> tuple[float, float]:
    if validation is None:
        return math.nan, math.nan
    f = gd_output(params, validation[0])
    return float(np.mean((f - validation[1]) ** 2)), float(np.mean(np.sign(f) == validation[1]))


def _fresh_checkpoint(arch, config, data) -> Checkpoint:
    params = init_params(arch, config.seed)
    empty = Curve(*(np.zeros(0) for _ in Curve._fields))
    return Checkpoint(params, config.transformation().init(params), params, 0, 0, -math.inf, np.zeros(0), np.zeros(0),
                      empty, arch, config, data, params if config.ema else None)


def train(arch: Architecture, data, config: TrainConfig = TrainConfig(), validation=None, checkpoint=None,
          resume: bool = False, progress: bool = True) -> TrainResult:
    """Train the network by minibatch Adam (config.optimizer) on the MSE (spec E.2).

    Args:
      arch: the architecture (arch.input_width must equal the data's N0).
      data: a `BatchSource`, or a pair (x (P, N0, T), y (P,)) of training arrays (`ArrayBatches`).
      config: optimisation settings.
      validation: optional (x_val, y_val): evaluated every config.eval_every steps; the best weights are kept.
      checkpoint: path of the checkpoint record (written every config.checkpoint_every steps, at every
        validation and at the end).
      resume: continue from `checkpoint` if it exists (same data, architecture and settings; config.steps may be
        larger). The result is bitwise identical to an uninterrupted run on the same machine.
      progress: show a tqdm progress bar (loss and validation accuracy in its postfix).

    Returns:
      TrainResult.
    """
    from tqdm.auto import tqdm

    if not isinstance(arch, Architecture):
        raise ValueError(f"arch must be an Architecture; got {type(arch).__name__}")
    source = ArrayBatches(*data) if isinstance(data, tuple) else data
    if source.input_width != arch.input_width:
        raise ValueError(f"x has token width N0 = {source.input_width} but arch.input_width = {arch.input_width}")
    if validation is not None:
        xv = as_float_array("validation x", validation[0], shape=(None, arch.input_width, None))
        validation = (xv, check_targets(validation[1], xv.shape[0]))
    if resume and checkpoint is None:
        raise ValueError("resume=True needs a checkpoint path")
    if config.checkpoint_every and checkpoint is None:
        raise ValueError("config.checkpoint_every > 0 needs a checkpoint path")
    fingerprint = source.fingerprint()
    if resume and checkpoint is not None and os.path.exists(checkpoint):
        ck = _resume_from(checkpoint, arch, config, fingerprint)
    else:
        ck = _fresh_checkpoint(arch, config, fingerprint)
    params, opt_state, best, best_step, best_acc = ck.params, ck.opt_state, ck.best_params, ck.best_step, \
        ck.best_accuracy
    average, snapshots = ck.average, list(ck.snapshots)
    losses, accs = list(ck.losses), list(ck.accuracies)
    curve = {k: list(v) for k, v in ck.curve._asdict().items()}
    step_fn = _make_step(config.optimizer_args(), arch.heads, float(config.ema))
    evals = config.eval_steps()
    save_every = config.checkpoint_every
    bar = tqdm(range(ck.step, config.steps), initial=ck.step, total=config.steps, disable=not progress,
               desc="train", leave=False)
    last_eval = max([0] + [int(s) for s in curve["step"]])
    for step in bar:
        xb, yb = source.batch(config.seed, step, config.batch_size)
        params, opt_state, average, value, acc = step_fn(params, opt_state, average, jnp.asarray(xb),
                                                         jnp.asarray(yb))
        losses.append(float(value))
        accs.append(float(acc))
        if not math.isfinite(losses[-1]):
            raise FloatingPointError(f"the loss became {losses[-1]} at step {step}; lower learning_rate")
        done = step + 1
        if done in evals:
            shown = average if config.ema else params
            if config.snapshots:
                snapshots.append((done, shown))
            v_loss, v_acc = _validate(shown, validation)
            for k, v in zip(Curve._fields, (done, np.mean(losses[last_eval:]), np.mean(accs[last_eval:]), v_loss,
                                            v_acc)):
                curve[k].append(float(v))
            last_eval = done
            if validation is None or v_acc > best_acc:
                best, best_step, best_acc = shown, done, (v_acc if validation is not None else best_acc)
            bar.set_postfix(loss=f"{curve['train_loss'][-1]:.3f}", val=f"{v_acc:.3f}")
        if checkpoint is not None and (done in evals or (save_every and done % save_every == 0)
                                       or done == config.steps):
            c = Curve(*(np.asarray(curve[k]) for k in Curve._fields))
            save_checkpoint(checkpoint, Checkpoint(params, opt_state, best, done, best_step, best_acc,
                                                   np.asarray(losses), np.asarray(accs), c, arch, config,
                                                   fingerprint, average, tuple(snapshots)))
    bar.close()
    c = Curve(*(np.asarray(curve[k], dtype=np.float64) for k in Curve._fields))
    return TrainResult(best, params, np.asarray(losses), c, best_step, config.steps, tuple(snapshots))
