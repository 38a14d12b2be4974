"""Data sources of the one-shot task: where the images of the training, validation and novel test classes come
from, registered by name in `DATA_SOURCES`.

A data source is a function `(data_dir, image_size) -> ClassSplit`. The library registers

* "digits": scikit-learn's bundled 8 x 8 handwritten digits (no files needed): training digits 0-4, validation
  digits 5, 6, test digits 7, 8, 9 (every class set disjoint; a validation set needs classes of its own).
* "omniglot": the Omniglot files in data_dir (`omniglot.load_omniglot`). Training: the background alphabets but
  two (`VALIDATION_ALPHABETS`), whose characters are the validation classes. Test: the characters of
  images_evaluation.zip when it is there (the full release: 659 characters of 20 alphabets, 20 drawings each),
  else those of all_runs.zip with twin runs merged (200 characters of 10 alphabets, 4 drawings each; see
  `omniglot.py`). Test groups are the alphabets.

A user adds a source without editing the library:

    @DATA_SOURCES.register("my_images")
    def my_images(data_dir, image_size): return ClassSplit(train=..., validation=..., test=..., ...)
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import numpy as np

from attnpaths._src.registry import Registry
from attnpaths._src.tasks import omniglot as om
from attnpaths._src.tasks.oneshot import EpisodeConfig, Episodes, make_episodes

DIGIT_SPLIT = {"train": (0, 1, 2, 3, 4), "validation": (5, 6), "test": (7, 8, 9)}
VALIDATION_ALPHABETS = ("Early_Aramaic", "Tagalog")
OOD_DIGITS = (0, 1)


class ClassSplit(NamedTuple):
    """Images of disjoint class sets, each class key -> (n_c, S, S) float64 in [0, 1] with bright strokes.

    train, validation, test: the class sets (validation and test classes are novel: never trained on).
    test_groups: lists of test class keys that form one "run"/alphabet (the within-group test protocol pairs
      two classes of one group); None: no groups.
    sources: what was read (files, folders, packages).
    notes: how the split was made, for the results file.
    """

    train: dict
    validation: dict
    test: dict
    test_groups: list | None
    sources: tuple
    notes: str


DataSource = Callable[[object, int], ClassSplit]
DATA_SOURCES: Registry[DataSource] = Registry("data source")


def load_digits_by_class(image_size: int = 8, classes: Sequence[int] = tuple(range(10))) -> dict[str, np.ndarray]:
    """scikit-learn's handwritten digits (1797 images, 8 x 8, strokes bright) as class key "0".."9" ->
    (n_c, S, S) float64 in [0, 1], resized to image_size (bilinear when enlarging)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    imgs = d.images / 16.0
    out = {}
    for c in classes:
        sel = imgs[d.target == int(c)]
        if len(sel) == 0:
            raise ValueError(f"digit classes must be in 0..9; got {c!r}")
        out[str(int(c))] = np.stack([om.resize(im, image_size) for im in sel])
    return out


@DATA_SOURCES.register("digits")
def digits_source(data_dir, image_size: int) -> ClassSplit:
    parts = {part: load_digits_by_class(image_size, digits) for part, digits in DIGIT_SPLIT.items()}
    return ClassSplit(parts["train"], parts["validation"], parts["test"], None, ("sklearn.datasets.load_digits",),
                      f"digits {DIGIT_SPLIT}")


def _alphabet_groups(keys) -> list[list[str]]:
    groups: dict[str, list[str]] = {}
    for k in sorted(keys):
        groups.setdefault(k.split("/")[0], []).append(k)
    return list(groups.values())


def omniglot_folder(data_dir) -> Path:
    """`data_dir` (or the shared data folder when None) as an existing folder; FileNotFoundError naming it."""
    if data_dir is None:
        data_dir = om.default_omniglot_dir()
        if data_dir is None:
            raise FileNotFoundError("no Omniglot folder given (data_dir / --data-dir) and none found at "
                                    "<workspace>/shared/data/omniglot; pass the folder holding "
                                    f"{om.EXPECTED_FILES}")
    data_dir = Path(data_dir).resolve()
    if not data_dir.is_dir():
        raise FileNotFoundError(f"Omniglot folder {data_dir} does not exist; pass the folder holding "
                                f"{om.EXPECTED_FILES}")
    return data_dir


@DATA_SOURCES.register("omniglot")
def omniglot_source(data_dir, image_size: int) -> ClassSplit:
    data_dir = omniglot_folder(data_dir)
    data = om.load_omniglot(data_dir, image_size)
    if not data.background:
        raise ValueError(f"{data_dir}: no background (training) characters found")
    alphabets = sorted({k.split("/")[0] for k in data.background})
    held = [a for a in VALIDATION_ALPHABETS if a in alphabets] or alphabets[-2:]
    if len(alphabets) - len(held) < 1:
        raise ValueError(f"{data_dir}: need at least 3 background alphabets (training + validation); found "
                         f"{alphabets}")
    train = {k: v for k, v in data.background.items() if k.split("/")[0] not in held}
    validation = {k: v for k, v in data.background.items() if k.split("/")[0] in held}
    if data.evaluation:
        test, groups = data.evaluation, _alphabet_groups(data.evaluation)
        how = "test: images_evaluation (alphabets as groups)"
    elif data.runs:
        test, groups = om.merge_run_twins(data.runs)
        how = ("test: all_runs with the twin runs (2j-1, 2j) merged class by class into one character with 4 "
               "drawings; groups = run pairs (one alphabet each)")
    else:
        raise ValueError(f"{data_dir}: no novel test classes; expected all_runs.zip or images_evaluation.zip")
    notes = f"validation alphabets {held} (held out of training); {how}"
    return ClassSplit(train, validation, test, groups, tuple(data.sources), notes)


def digits_ood_episodes(n_episodes: int, config: EpisodeConfig, digits: tuple[int, int] = OOD_DIGITS,
                        seed: int = 0) -> Episodes:
    """Out-of-distribution episodes from scikit-learn digits in the token format of `config` (spec E.1 uses
    MNIST 0 vs 1): the digits are resized to config.image_size so an Omniglot-trained model accepts them."""
    if len(digits) != 2 or int(digits[0]) == int(digits[1]):
        raise ValueError(f"digits must be two different digit classes; got {digits!r}")
    imgs = load_digits_by_class(config.image_size, digits)
    return make_episodes(imgs, n_episodes, config, np.random.default_rng([seed, 2]))


class OneShotData(NamedTuple):
    """Training and novel-class test episodes (class-disjoint) and the class keys behind them."""

    train: Episodes
    test: Episodes
    config: EpisodeConfig
    train_classes: tuple[str, ...]
    test_classes: tuple[str, ...]


def oneshot_dataset(source: str = "digits", data_dir=None, n_train: int = 600, n_test: int = 1000,
                    config: EpisodeConfig | None = None, seed: int = 0, within_groups: bool = False) -> OneShotData:
    """Training episodes and novel-class test episodes of a registered data source (class-disjoint).

    Args:
      source: a name in `DATA_SOURCES` ("digits", "omniglot", or a user's).
      data_dir: the source's folder (Omniglot: default the shared data folder). Ignored by digits.
      n_train, n_test: numbers of episodes (balanced labels).
      config: token format; default 8 x 8 images with 4 x 4 patches.
      seed: seed of the episode sampling (train and test draw independent streams of it).
      within_groups: test pairs from one test group (run / alphabet) only.
    """
    config = config or EpisodeConfig()
    split = DATA_SOURCES[source](data_dir, config.image_size)
    train = make_episodes(split.train, n_train, config, np.random.default_rng([seed, 0]))
    test = make_episodes(split.test, n_test, config, np.random.default_rng([seed, 1]),
                         groups=split.test_groups if within_groups else None)
    return OneShotData(train, test, config, tuple(sorted(split.train)), tuple(sorted(split.test)))
