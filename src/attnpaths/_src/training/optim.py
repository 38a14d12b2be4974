"""Optimisers and learning-rate schedules of the training loop, as registries (a user adds theirs by name).

"adam_l2" is the paper's optimiser, PyTorch's `Adam(weight_decay=wd)`: the decay wd * w is added to the gradient
before Adam's moment estimates (L2 regularisation); "adamw" is decoupled weight decay (optax.adamw), where the
decay bypasses the moments. Schedules multiply the learning rate ("constant", "warmup_cosine").
"""

from __future__ import annotations

import optax

from attnpaths._src.registry import Registry

ADAM = {"b1": 0.9, "b2": 0.999, "eps": 1e-8}  # PyTorch's and optax's defaults, the paper's

OPTIMIZERS: Registry = Registry("optimizer")
"""name -> (learning_rate (float or optax schedule), weight_decay) -> optax.GradientTransformation."""


@OPTIMIZERS.register("adam_l2")
def adam_l2(learning_rate, weight_decay: float) -> optax.GradientTransformation:
    """Adam on g + wd * w (weight decay as L2 on the gradient, PyTorch's `Adam(weight_decay=wd)`; the paper's)."""
    return optax.chain(optax.add_decayed_weights(weight_decay), optax.adam(learning_rate, **ADAM))


@OPTIMIZERS.register("adamw")
def adamw(learning_rate, weight_decay: float) -> optax.GradientTransformation:
    """AdamW: Adam on g, then w -= lr * wd * w (decoupled weight decay, Loshchilov & Hutter 2019)."""
    return optax.adamw(learning_rate, weight_decay=weight_decay, **ADAM)


SCHEDULES: Registry = Registry("learning-rate schedule")
"""name -> (learning_rate, warmup_steps, steps) -> optax schedule (or the float itself for a constant rate)."""


@SCHEDULES.register("constant")
def constant_schedule(learning_rate: float, warmup_steps: int, steps: int):
    return learning_rate


@SCHEDULES.register("warmup_cosine")
def warmup_cosine_schedule(learning_rate: float, warmup_steps: int, steps: int):
    """Linear warm-up from 0 over `warmup_steps`, then cosine decay to 0 at `steps`."""
    return optax.warmup_cosine_decay_schedule(0.0, learning_rate, warmup_steps, steps, end_value=0.0)


def make_optimizer(optimizer: str, learning_rate: float, weight_decay: float, schedule: str = "constant",
                   warmup_steps: int = 0, steps: int = 0) -> optax.GradientTransformation:
    """The optax optimiser `OPTIMIZERS[optimizer]` with the learning rate `SCHEDULES[schedule]`."""
    return OPTIMIZERS[optimizer](SCHEDULES[schedule](learning_rate, warmup_steps, steps), weight_decay)
