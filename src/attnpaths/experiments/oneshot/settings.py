"""Settings of experiment 2 (one-shot image classification, spec E) and its presets.

Presets (TOML files in `attnpaths/experiments/presets/oneshot/`):

* `paper`: exactly spec E: 32 x 32 images, grey repeated to 3 channels, 8 x 8 patches (N0 = 192, 48 tokens),
  a trained network of width 512 with G = 128, 2 layers x 4 heads, Adam with L2 weight decay 5e-5 (PyTorch's
  `Adam(weight_decay=...)`, the authors'), lr 3e-4, batch 128,
  ~10 epochs, best checkpoint by validation; the paper's widths and temperatures (with 2, 3, 5 added).
* `cpu`: the paper's input, so that the theory side is paper-sized (P = 600, N0 = 192, 16 paths, 48 tokens), with
  a smaller trained network, sized to finish on a 2-core CPU in under 30 minutes.
* `quick`: the smoke test (seconds).
* `strength`: the `cpu` input and network trained 8000 steps (warm-up and cosine decay) with every validation's
  weights kept, and a theory grid of 3 widths x 6 temperatures: `attnpaths oneshot-strength --preset strength`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from attnpaths._src.tasks.sources import DATA_SOURCES
from attnpaths._src.training.optim import OPTIMIZERS, SCHEDULES
from attnpaths._src.training.model import DTYPES
from attnpaths.experiments.progress import progress_setting
from attnpaths.experiments.settings import (Settings, at_least, between, each, nonnegative, packaged_presets,
                                            positive, setting)

ANALYSES = ("samples", "order", "alignment", "heads", "ood")
PAPER_WIDTHS = (10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0)
PAPER_TEMPERATURES = (0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)


@dataclass(frozen=True)
class OneShotSettings(Settings):
    """Everything that determines a run of experiment 2 (stored in OUT/run.npz; a resumed run must match)."""

    # -- data and episodes (spec E.1, E.2)
    data: str = setting("digits", "data source of the images (digits: scikit-learn's, no files; omniglot: "
                        "the Omniglot zips in data_dir)", choices=DATA_SOURCES)
    data_dir: str | None = setting(None, "folder of the data files (omniglot: default "
                                   "<workspace>/shared/data/omniglot)", identity=False)
    image_size: int = setting(8, "side S of the resized images (paper: 32)", check=at_least(1))
    patch_size: int = setting(4, "side p of the patches (paper: 8)", check=at_least(1))
    channels: int = setting(1, "grey value repeated over this many channels; N0 = p^2 x channels (paper: 3)",
                            check=at_least(1))
    dark_strokes: bool = setting(False, "feed dark strokes on white, as the original PNGs (paper: true)")
    pixel_mean: float = setting(0.0, "pixel normalisation (v - mean) / std before the LayerNorm (paper: 0.922)")
    pixel_std: float = setting(1.0, "pixel normalisation std (paper: 0.084)", check=positive)
    label_seed: int = setting(0, "seed of the fixed label-embedding table", check=at_least(0))
    episode_seed: int = setting(0, "seed of the validation, test and OOD episodes", check=at_least(0))
    n_validation: int = setting(2500, "validation episodes (held-out classes): T selection, path subsets, "
                                "checkpoint selection (2500: one standard error of an accuracy <= 1 point)",
                                check=at_least(2))
    n_test: int = setting(1000, "test episodes per protocol (novel classes)", check=at_least(2))
    n_ood: int = setting(1000, "out-of-distribution episodes (digits 0 vs 1; Omniglot runs only)",
                         check=at_least(2))
    # -- the gradient-descent network (spec E.2)
    heads: tuple[int, ...] = setting((4, 4), "summed heads per attention layer (H_1, ..., H_L)",
                                     check=each(positive))
    gd_width: int = setting(64, "hidden width N of the trained network (paper: 512)", check=at_least(1))
    qk_dim: int = setting(16, "query/key dimension G (paper: 128)", check=at_least(1))
    dtype: str = setting("float64", "precision of the trained network (the theory is always float64)",
                         choices=DTYPES)
    seed: int = setting(0, "seed of the network's initialisation and of its training episodes", check=at_least(0))
    train_steps: int = setting(2000, "optimiser steps; every step draws fresh episodes", check=at_least(1))
    batch_size: int = setting(128, "episodes per step (paper: 128)", check=at_least(1))
    optimizer: str = setting("adamw", "adam_l2: Adam with weight decay as L2 on the gradient (the paper's); adamw: "
                             "decoupled weight decay", choices=OPTIMIZERS)
    learning_rate: float = setting(1e-3, "peak learning rate (paper: 3e-4)", check=positive)
    lr_schedule: str = setting("constant", "learning-rate schedule (warmup_cosine: linear warm-up over "
                               "warmup_steps, then cosine decay to 0 at train_steps)", choices=SCHEDULES)
    warmup_steps: int = setting(0, "warm-up steps of the learning-rate schedule", check=at_least(0))
    weight_decay: float = setting(5e-5, "weight decay (paper: 5e-5)", check=nonnegative)
    ema: float = setting(0.0, "decay of a moving average of the weights that is validated and kept instead of the "
                         "weights themselves (e.g. 0.999; 0: off)", check=between(0, 1, include_lo=True))
    augment: int = setting(0, "jittered copies of every training drawing (rotation +-10 deg, scale x0.9-1.1, shift "
                           "+-0.06 of the side: the same character, not a new class), made once; 0: off",
                           check=at_least(0))
    keep_snapshots: bool = setting(False, "keep the weights of every validation in the train stage (learning "
                                   "curves, the claim against training progress)")
    eval_every: int = setting(200, "validate every this many steps; the best checkpoint is kept", check=at_least(1))
    n_eval: int = setting(2500, "validation episodes used for checkpoint selection (the first of the validation "
                          "set; 500 leaves a standard error of 2.2 points, 2500 of 1 point)", check=at_least(2))
    # -- the theory (spec E.4)
    n_theory_train: int = setting(600, "P, training episodes of the theory (class-sorted)", check=at_least(2))
    theory_draws: int = setting(1, "independent draws of the P theory examples (draw d uses seed (seed, d))",
                                check=at_least(1))
    widths: tuple[float, ...] = setting(PAPER_WIDTHS, "widths N of the theory", check=each(positive))
    temperatures: tuple[float, ...] = setting(PAPER_TEMPERATURES, "temperature grid T", check=each(positive))
    extra_temperatures: tuple[float, ...] = setting((10.0, 20.0, 50.0, 100.0), "temperatures added one at a "
                                                    "time while the top of the grid is chosen", check=each(
                                                        positive, nonempty=False))
    # -- statistics
    n_bootstrap: int = setting(2000, "bootstrap resamples of the test characters", check=at_least(100))
    confidence: float = setting(0.95, "level of the bootstrap intervals", check=between(0, 1))
    # -- analyses of the first draw (Fig. 3 c-f)
    analyses: tuple[str, ...] = setting(ANALYSES, "analyses to run after the claim (any of: samples, order, "
                                        "alignment, heads, ood)", choices=ANALYSES)
    sample_chains: int = setting(4, "Gibbs chains at the smallest width", check=at_least(1))
    sample_warmup: int = setting(50, "Gibbs warm-up sweeps", check=at_least(0))
    sample_draws: int = setting(400, "most Gibbs draws per chain", check=at_least(4))
    sample_first_draws: int = setting(20, "draws made before the time box decides how many more fit",
                                      check=at_least(4))
    sample_seconds: float = setting(240.0, "time box of the sampling (seconds)", check=positive)
    random_orders: int = setting(20, "random head orders of the pruning curves", check=at_least(2))
    alignment_pcs: int = setting(50, "kernel PCs of the alignment panel", check=at_least(1))
    # -- output (does not change the results)
    progress: bool = progress_setting()

    def __post_init__(self):
        super().__post_init__()
        if self.image_size % self.patch_size:
            raise ValueError(f"setting 'image_size' ({self.image_size}) must be a multiple of 'patch_size' "
                             f"({self.patch_size})")
        if self.warmup_steps > self.train_steps:
            raise ValueError(f"setting 'warmup_steps' ({self.warmup_steps}) must be <= 'train_steps' "
                             f"({self.train_steps})")
        if self.n_eval > self.n_validation:
            raise ValueError(f"setting 'n_eval' ({self.n_eval}) must be <= 'n_validation' ({self.n_validation})")
        if len(set(self.temperatures)) != len(self.temperatures) or len(set(self.widths)) != len(self.widths):
            raise ValueError("settings 'widths' and 'temperatures' must not repeat a value")

    def one_shot_run(self, **changes) -> "OneShotSettings":
        """These settings as those of one plain one-shot run (a study's settings are a subclass with fields of its
        own), with `changes` applied (e.g. the seed of one of the study's runs)."""
        names = {f.name for f in dataclasses.fields(OneShotSettings)}
        values = {k: v for k, v in dataclasses.asdict(self).items() if k in names}
        return OneShotSettings(**dict(values, **changes))

    @property
    def token_dim(self) -> int:
        return self.patch_size ** 2 * self.channels


PRESETS = packaged_presets("preset of oneshot", "oneshot")
