"""The gradient-descent-trained attention network of experiment 2 (spec E.2) in JAX + optax.

model.py     shapes, weights, the network's output (its attention is `attnpaths.QKHeads`)
analysis.py  path weights, U_GD, head importance, pruning (spec E.5c, E.7)
fit.py       training with fresh batches, validation, best weights, resumable checkpoints
optim.py     the optimisers (adam_l2: the paper's; adamw) and learning-rate schedules, as registries
"""

from attnpaths._src.training.analysis import (gd_order_parameter, head_importance_gradient, head_mask_without,
                                              path_readout_weights, prune_accuracy_curve,
                                              single_head_drop_accuracy)
from attnpaths._src.training.fit import (ArrayBatches, BatchSource, Checkpoint, Curve, TrainConfig, TrainResult,
                                         load_checkpoint, save_checkpoint, train)
from attnpaths._src.training.model import (Architecture, Params, architecture_of, attention_layers, gd_accuracy,
                                           gd_loss, gd_output, init_params, model_attention)
from attnpaths._src.training.optim import OPTIMIZERS, SCHEDULES, make_optimizer

__all__ = [
    "OPTIMIZERS", "SCHEDULES", "Architecture", "ArrayBatches", "BatchSource", "Checkpoint", "Curve", "Params",
    "TrainConfig", "TrainResult", "make_optimizer",
    "architecture_of", "attention_layers", "gd_accuracy", "gd_loss", "gd_order_parameter", "gd_output",
    "head_importance_gradient", "head_mask_without", "init_params", "load_checkpoint", "model_attention",
    "path_readout_weights", "prune_accuracy_curve", "save_checkpoint", "single_head_drop_accuracy", "train",
]
