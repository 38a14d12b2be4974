"""The episodes of a one-shot run, rebuilt deterministically from its settings (never stored: they are cheap
to rebuild and large).

* training: fresh episodes at every step from the training classes (`EpisodeBatches`), never a fixed pool;
* theory: P = n_theory_train episodes of the training classes per draw, class-sorted (spec E.3, H.8);
* validation: episodes of held-out classes (T choice, path subsets, checkpoint selection); pairs of any two
  validation classes, as the headline test protocol;
* test, two protocols on the novel classes:
    "cross":  any two test characters (the paper's protocol, the headline),
    "within": two characters of one test group (an official run / alphabet; harder);
* ood: scikit-learn digits 0 vs 1 in the same token format (Omniglot only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attnpaths._src.store import data_hash
from attnpaths._src.tasks.oneshot import EpisodeBatches, EpisodeConfig, Episodes, make_episodes
from attnpaths._src.tasks.sources import DATA_SOURCES, ClassSplit, digits_ood_episodes
from attnpaths.experiments.oneshot.settings import OneShotSettings

PROTOCOLS = ("cross", "within")


def episode_config(s: OneShotSettings) -> EpisodeConfig:
    return EpisodeConfig(image_size=s.image_size, patch_size=s.patch_size, channels=s.channels,
                         dark_strokes=s.dark_strokes, pixel_mean=s.pixel_mean, pixel_std=s.pixel_std,
                         label_seed=s.label_seed)


def class_sorted(ep: Episodes) -> Episodes:
    """Label +1 first, then -1 (stable), as the authors' theory data (spec E.3, H.8)."""
    order = np.argsort(-ep.y, kind="stable")
    return Episodes(ep.x[order], ep.y[order], ep.classes[order], None if ep.labels is None else ep.labels[order])


@dataclass(frozen=True)
class EpisodeSets:
    """The data of a run (train / validation / test classes disjoint)."""

    config: EpisodeConfig
    split: ClassSplit
    training: EpisodeBatches
    validation: Episodes
    test: dict  # protocol -> Episodes
    ood: Episodes | None

    def theory_train(self, s: OneShotSettings, draw: int) -> Episodes:
        """Draw `draw` of the theory's P training episodes (training classes, class-sorted)."""
        rng = np.random.default_rng([s.seed, 1, draw])
        return class_sorted(make_episodes(self.split.train, s.n_theory_train, self.config, rng))

    def evaluation_sets(self) -> dict:
        """name -> Episodes of every fixed evaluation set: validation, test_cross, test_within, (ood)."""
        out = {"validation": self.validation}
        out.update({f"test_{p}": ep for p, ep in self.test.items()})
        if self.ood is not None:
            out["ood"] = self.ood
        return out

    def fingerprint(self) -> str:
        """Identifies the images and episodes (stored with the training; a resume on other data is refused)."""
        sets = self.evaluation_sets()
        return self.training.fingerprint()[:32] + data_hash(*(e.x for e in sets.values()))[:32]


def build_episodes(s: OneShotSettings) -> EpisodeSets:
    """All episode sets of a run, deterministic in the settings (independent streams per set).

    Raises FileNotFoundError naming the folder when the data files are missing.
    """
    config = episode_config(s)
    split = DATA_SOURCES[s.data](s.data_dir, s.image_size)
    rng = lambda k: np.random.default_rng([s.episode_seed, k])
    validation = make_episodes(split.validation, s.n_validation, config, rng(2))
    test = {"cross": make_episodes(split.test, s.n_test, config, rng(3)),
            "within": make_episodes(split.test, s.n_test, config, rng(4), groups=split.test_groups)}
    ood = digits_ood_episodes(s.n_ood, config, seed=s.episode_seed) if s.data == "omniglot" else None
    training = EpisodeBatches(split.train, config, augment=s.augment, augment_seed=s.episode_seed)
    return EpisodeSets(config, split, training, validation, test, ood)


def describe(s: OneShotSettings, e: EpisodeSets) -> dict:
    """The data part of results["inputs"]."""
    return {
        "data": s.data, "data_sources": list(e.split.sources), "split": e.split.notes,
        "episode_config": {k: getattr(e.config, k) for k in e.config.__dataclass_fields__},
        "token_width": e.config.token_dim, "n_tokens": e.config.n_tokens,
        "sizes": {"theory_train": s.n_theory_train, "validation": len(e.validation.y),
                  **{f"test_{p}": len(t.y) for p, t in e.test.items()},
                  "ood": None if e.ood is None else len(e.ood.y)},
        "classes": {"train": sorted(e.split.train), "validation": sorted(e.split.validation),
                    "test": sorted(e.split.test)},
        "n_classes": {"train": len(e.split.train), "validation": len(e.split.validation),
                      "test": len(e.split.test)},
        "test_groups": None if e.split.test_groups is None else len(e.split.test_groups),
    }
