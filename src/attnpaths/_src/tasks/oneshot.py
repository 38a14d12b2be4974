"""One-shot in-context image classification: real images -> 2-way 1-shot episodes (spec E.1, E.2).

An episode is a sequence of three images cut into p x p patches (row-major patches, image-major order):

    [support of label 0 or 1] [the other support] [query, label token 2 = "unknown"]

(the two supports in random order). Every patch token is LayerNorm'ed (no affine, eps 1e-5 as PyTorch), then a
sinusoidal positional table (normalised by its global mean and std) and a FIXED label embedding (a (3, d) N(0, 1)
table drawn from `EpisodeConfig.label_seed`, added to every patch of an image) are ADDED. The result is the
gradient-descent network's x_0 and the theory's input, stored as (P, N0 = d, T = 3 n_patches) with tokens as
columns (spec A.1). The target is +1 if the query belongs to the class of the support labelled 1, else -1.

Image sources (all real images, strokes bright on a dark background, values in [0, 1]):

* `load_digits_by_class`: scikit-learn's 8 x 8 handwritten digits (bundled, no download). The default task
  trains on digits 0-5 and tests on the novel digits 6-9.
* `load_omniglot`: the Omniglot release of Lake et al. (105 x 105 1-bit PNGs), read in memory from the official
  zip files (or the same layout unpacked). Training classes are the characters of the background alphabets
  (`images_background*.zip`, class key "Alphabet/characterNN"); novel classes are the characters of the 20
  official one-shot runs (`all_runs.zip`, key "runNN/classKK", two drawings each), or of `images_evaluation.zip`
  when there are no runs. Test episodes pair two characters of the SAME run, which guarantees two different
  characters (a character may recur across runs under another name).

Default sizes (chosen so that the gradient-descent model of `training.py` trains in minutes on 2 CPU cores):
digits 8 x 8 with 4 x 4 patches -> d = 16, T = 12; Omniglot 16 x 16 with 8 x 8 patches -> d = 64, T = 12
(the paper: 32 x 32 x 3 with 8 x 8 patches -> d = 192, T = 48). With the default network of `training.py`
(2 x 4 heads, N = 64, G = 16), 2000 steps of batch 128 on 20000 Omniglot episodes take ~30 s on 2 CPU cores and
reach ~0.70 accuracy on novel-character episodes; 16 x 16 with 4 x 4 patches (d = 16, T = 48) is 8x slower and
learns far less in the same number of steps (0.54).
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, NamedTuple, Sequence

import numpy as np

OMNIGLOT_SIZE = 105
BACKGROUND_SETS = ("images_background", "images_background_small1", "images_background_small2")
EVALUATION_SETS = ("images_evaluation",)
RUNS_SET = "all_runs"
_EXPECTED_FILES = (", ".join(f"{n}.zip" for n in BACKGROUND_SETS + EVALUATION_SETS) + f", {RUNS_SET}.zip "
                   "(or the same names unpacked as folders)")


# ----------------------------------------------------------------------------------------------------------------
# Episode format
# ----------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EpisodeConfig:
    """Token format of the episodes (spec E.2).

    image_size: side S of the (square) images after resizing; must be a multiple of patch_size.
    patch_size: side p of the patches; the token width is d = N0 = p * p.
    label_seed: seed of the fixed N(0, 1) label-embedding table (3, d); change it only to study its effect.
    layer_norm_eps: epsilon of the per-patch LayerNorm (PyTorch's default 1e-5).
    """

    image_size: int = 8
    patch_size: int = 4
    label_seed: int = 0
    layer_norm_eps: float = 1e-5

    def __post_init__(self):
        for name in ("image_size", "patch_size"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive int; got {v!r}")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size must be a multiple of patch_size; got image_size={self.image_size}, "
                             f"patch_size={self.patch_size}")
        if not self.layer_norm_eps > 0:
            raise ValueError(f"layer_norm_eps must be > 0; got {self.layer_norm_eps}")

    @property
    def n_patches(self) -> int:
        """Patches per image, (S / p)^2."""
        return (self.image_size // self.patch_size) ** 2

    @property
    def token_dim(self) -> int:
        """Token width d = N0 = p^2."""
        return self.patch_size ** 2

    @property
    def n_tokens(self) -> int:
        """Sequence length T = 3 n_patches (two supports and the query)."""
        return 3 * self.n_patches


DIGITS_CONFIG = EpisodeConfig(image_size=8, patch_size=4)
OMNIGLOT_CONFIG = EpisodeConfig(image_size=16, patch_size=8)


class Episodes(NamedTuple):
    """A set of episodes.

    x: (n, N0, T) float64, tokens as columns (the theory's layout, spec A.1).
    y: (n,) float64 in {-1, +1}: +1 if the query's class is the one of the support labelled 1.
    classes: (n, 2) str: the class keys given label 0 and label 1 in each episode.
    """

    x: np.ndarray
    y: np.ndarray
    classes: np.ndarray


class OneShotData(NamedTuple):
    """Training and novel-class test episodes (class-disjoint) and the class keys behind them."""

    train: Episodes
    test: Episodes
    config: EpisodeConfig
    train_classes: tuple[str, ...]
    test_classes: tuple[str, ...]


def positional_table(n_tokens: int, dim: int) -> np.ndarray:
    """Sinusoidal positions (n_tokens, dim): sin on even, cos on odd dims, base 10000, then normalised by the
    table's global mean and standard deviation (spec E.2)."""
    pos = np.arange(n_tokens, dtype=np.float64)[:, None]
    pair = np.arange(dim) // 2  # dims 2i and 2i+1 share the frequency 10000^(-2i/d)
    angle = pos * np.exp(-np.log(10000.0) * (2 * pair) / dim)[None, :]
    pe = np.where(np.arange(dim) % 2 == 0, np.sin(angle), np.cos(angle))
    return (pe - pe.mean()) / pe.std()


def label_embedding(config: EpisodeConfig) -> np.ndarray:
    """The fixed label table (3, d) ~ N(0, 1): rows for support labels 0, 1 and the query's "unknown" 2."""
    return np.random.default_rng(config.label_seed).standard_normal((3, config.token_dim))


def patchify(images: np.ndarray, patch_size: int) -> np.ndarray:
    """(n, S, S) -> (n, (S/p)^2, p^2): patches in row-major order, pixels "(p1 p2)" row-major inside a patch."""
    n, s, _ = images.shape
    g = s // patch_size
    return (images.reshape(n, g, patch_size, g, patch_size).transpose(0, 1, 3, 2, 4)
            .reshape(n, g * g, patch_size * patch_size))


def layer_norm(v: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """LayerNorm over the last axis without affine parameters (biased variance, as PyTorch)."""
    mu = v.mean(axis=-1, keepdims=True)
    var = v.var(axis=-1, keepdims=True)
    return (v - mu) / np.sqrt(var + eps)


def _check_images(images_by_class: Mapping[str, np.ndarray], config: EpisodeConfig) -> dict[str, np.ndarray]:
    if not isinstance(images_by_class, Mapping) or not images_by_class:
        raise ValueError("images_by_class must be a non-empty mapping class key -> (n, S, S) images")
    out = {}
    s = config.image_size
    for key, imgs in images_by_class.items():
        imgs = np.asarray(imgs, dtype=np.float64)
        if imgs.ndim != 3 or imgs.shape[1:] != (s, s):
            raise ValueError(f"images of class {key!r} must have shape (n, {s}, {s}) = (n, image_size, "
                             f"image_size); got {imgs.shape}")
        if not np.all(np.isfinite(imgs)):
            raise ValueError(f"images of class {key!r} contain NaN or infinite values")
        out[str(key)] = imgs
    return out


def _pair_pool(images: dict[str, np.ndarray], groups) -> list[list[str]]:
    """Groups of classes among which the two classes of an episode are drawn (one group = any pair)."""
    if groups is None:
        groups = [list(images)]
    pools = []
    for g in groups:
        g = [str(c) for c in g]
        missing = [c for c in g if c not in images]
        if missing:
            raise ValueError(f"groups name classes that are not in images_by_class: {missing[:5]}")
        if len(g) >= 2:
            pools.append(g)
    return pools


def _max_distinct(images: dict[str, np.ndarray], pools: list[list[str]]) -> int:
    """Number of distinct episodes (class pair, labels, drawings, support order) the pools allow."""
    total = 0
    for g in pools:
        n = np.array([len(images[c]) for c in g], dtype=np.float64)
        # query class q (n_q (n_q - 1) ordered support/query drawings) x other class o (n_o drawings) x 2 orders
        # x 2 label assignments
        total += 4 * float(np.sum((n * (n - 1))[:, None] * n[None, :]) - np.sum(n * (n - 1) * n))
    return int(min(total, 2 ** 62))


def tokens(images: np.ndarray, labels: np.ndarray, config: EpisodeConfig) -> np.ndarray:
    """Token matrix of episodes: images (n, 3, S, S) with label tokens (n, 3) -> x_0 (n, d, T) (spec E.2)."""
    n = images.shape[0]
    patches = layer_norm(patchify(images.reshape(n * 3, config.image_size, config.image_size),
                                  config.patch_size), config.layer_norm_eps)
    patches = patches.reshape(n, 3, config.n_patches, config.token_dim)
    patches = patches + label_embedding(config)[labels][:, :, None, :]
    seq = patches.reshape(n, config.n_tokens, config.token_dim)
    seq = seq + positional_table(config.n_tokens, config.token_dim)[None]
    return np.ascontiguousarray(seq.transpose(0, 2, 1))


def make_episodes(images_by_class: Mapping[str, np.ndarray], n_episodes: int, config: EpisodeConfig,
                  rng: np.random.Generator, groups: Sequence[Sequence[str]] | None = None) -> Episodes:
    """2-way 1-shot in-context episodes (spec E.1) with balanced labels.

    Args:
      images_by_class: class key -> (n_c, S, S) images (S = config.image_size), n_c >= 2 drawings per class.
      n_episodes: number of episodes; exactly floor(n/2) have y = -1 and the rest y = +1, in random order.
      config: the token format.
      rng: NumPy generator (the only source of randomness).
      groups: optional lists of class keys; the two classes of an episode come from one group (chosen
        uniformly among the groups with >= 2 classes). Default: any two classes.

    Returns:
      Episodes(x (n, d, T), y (n,), classes (n, 2)).
    """
    images = _check_images(images_by_class, config)
    if not isinstance(n_episodes, (int, np.integer)) or isinstance(n_episodes, bool) or n_episodes < 1:
        raise ValueError(f"n_episodes must be a positive int; got {n_episodes!r}")
    few = sorted(k for k, v in images.items() if len(v) < 2)
    if few:
        raise ValueError(f"every class needs >= 2 drawings (one support, one query); classes {few[:5]} have "
                         f"fewer")
    pools = _pair_pool(images, groups)
    if not pools:
        raise ValueError(f"too few classes: a 2-way episode needs two classes in one group; got "
                         f"{len(images)} classes" + ("" if groups is None else f" in {len(groups)} groups"))
    if n_episodes > _max_distinct(images, pools):
        raise ValueError(f"too few classes/drawings for {n_episodes} distinct episodes: {len(images)} classes "
                         f"allow at most {_max_distinct(images, pools)}")
    y = np.where(rng.permutation(n_episodes) < n_episodes // 2, -1.0, 1.0)
    seq = np.empty((n_episodes, 3, config.image_size, config.image_size))
    labels = np.empty((n_episodes, 3), dtype=np.int64)
    classes = np.empty((n_episodes, 2), dtype=object)
    for i in range(n_episodes):
        pool = pools[rng.integers(len(pools))]
        pair = [pool[j] for j in rng.choice(len(pool), size=2, replace=False)]  # pair[0] gets label 0
        q = int(y[i] > 0)
        same, other = images[pair[q]], images[pair[1 - q]]
        d_sup, d_query = rng.choice(len(same), size=2, replace=False)
        supports = {q: same[d_sup], 1 - q: other[rng.integers(len(other))]}
        order = rng.permutation(2)
        seq[i, 0], seq[i, 1], seq[i, 2] = supports[order[0]], supports[order[1]], same[d_query]
        labels[i] = (order[0], order[1], 2)
        classes[i] = pair
    return Episodes(tokens(seq, labels, config), y, classes.astype(str))


# ----------------------------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------------------------

def _resize(img: np.ndarray, size: int) -> np.ndarray:
    """Float image -> (size, size) float64: area averaging when shrinking, bilinear when enlarging."""
    from PIL import Image

    if img.shape == (size, size):
        return img.astype(np.float64)
    pil = Image.fromarray(np.asarray(img, dtype=np.float32), mode="F")
    method = Image.Resampling.BOX if size < min(img.shape) else Image.Resampling.BILINEAR
    return np.asarray(pil.resize((size, size), resample=method), dtype=np.float64)


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
        out[str(int(c))] = np.stack([_resize(im, image_size) for im in sel])
    return out


class OmniglotData(NamedTuple):
    """Omniglot images, each (n, S, S) float64 in [0, 1] with strokes bright (1 - the PNG's value).

    background: "Alphabet/characterNN" -> drawings of the background (training) characters; the two small
      background sets are merged (Greek and Latin appear in both; a drawing's file name identifies it).
    evaluation: the same for images_evaluation (empty when that file is absent).
    runs: "runNN/classKK" -> (2, S, S): the run's training drawing training/classKK.png and the matching test
      drawing (from class_labels.txt). Empty when all_runs is absent.
    sources: the files / folders that were read.
    """

    background: dict
    evaluation: dict
    runs: dict
    sources: tuple

    def run_groups(self) -> list[list[str]]:
        """Class keys grouped by run (the 20 characters of a run are distinct characters)."""
        groups: dict[str, list[str]] = {}
        for key in sorted(self.runs):
            groups.setdefault(key.split("/")[0], []).append(key)
        return list(groups.values())


class _Source:
    """A zip file or a folder, listed as relative POSIX paths of its PNG / TXT members."""

    def __init__(self, path: Path):
        self.path = path
        if path.is_dir():
            self._zip = None
            self.names = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
        else:
            try:
                self._zip = zipfile.ZipFile(path)
            except zipfile.BadZipFile as err:
                raise ValueError(f"{path} is not a readable zip file ({err})") from None
            self.names = sorted(n for n in self._zip.namelist() if not n.endswith("/"))

    def read(self, name: str) -> bytes:
        if self._zip is None:
            return (self.path / name).read_bytes()
        return self._zip.read(name)

    def close(self):
        if self._zip is not None:
            self._zip.close()


def _find(data_dir: Path, name: str) -> Path | None:
    for cand in (data_dir / f"{name}.zip", data_dir / name):
        if cand.exists():
            return cand
    return None


def _decode_png(raw: bytes, where: str, image_size: int) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(raw)) as im:
            im.load()
            arr = np.asarray(im.convert("L"), dtype=np.float64) / 255.0
    except Exception as err:  # PIL raises several types for corrupt files
        raise ValueError(f"cannot decode PNG {where}: {err}") from None
    if arr.shape != (OMNIGLOT_SIZE, OMNIGLOT_SIZE):
        raise ValueError(f"Omniglot image {where} has size {arr.shape[1]}x{arr.shape[0]}; expected "
                         f"{OMNIGLOT_SIZE}x{OMNIGLOT_SIZE}")
    return _resize(1.0 - arr, image_size)


def _read_alphabets(src: _Source, name: str, image_size: int, into: dict[str, dict[str, np.ndarray]]):
    """Read <name>/<alphabet>/<character>/<file>.png (the top folder is optional) into key -> {file: image}."""
    pngs = [n for n in src.names if n.lower().endswith(".png")]
    if not pngs:
        raise ValueError(f"{src.path}: found no PNG images; expected {name}/<alphabet>/<characterNN>/*.png")
    for n in pngs:
        parts = n.split("/")
        if parts[0] == name:
            parts = parts[1:]
        if len(parts) != 3:
            raise ValueError(f"{src.path}: unexpected layout, found {n!r}; expected "
                             f"{name}/<alphabet>/<characterNN>/<file>.png")
        alphabet, char, fname = parts
        drawings = into.setdefault(f"{alphabet}/{char}", {})
        if fname not in drawings:  # the same drawing in two background sets is read once
            drawings[fname] = _decode_png(src.read(n), f"{src.path}:{n}", image_size)


_LABEL_LINE = re.compile(r"^\s*(?:run\d+/)?(test/item\d+\.png)\s+(?:run\d+/)?(training/class\d+\.png)\s*$")


def _read_runs(src: _Source, image_size: int) -> dict[str, np.ndarray]:
    """runNN/class_labels.txt + runNN/{training,test}/*.png -> "runNN/classKK" -> (2, S, S)."""
    names = set(src.names)
    label_files = sorted(n for n in names if n.split("/")[-1] == "class_labels.txt")
    if not label_files:
        raise ValueError(f"{src.path}: found no runNN/class_labels.txt among {len(names)} files; expected "
                         "runNN/class_labels.txt, runNN/training/classKK.png, runNN/test/itemKK.png")
    runs = {}
    for lf in label_files:
        prefix = lf[: -len("class_labels.txt")]
        run = prefix.rstrip("/").split("/")[-1]
        if not re.fullmatch(r"run\d+", run):
            raise ValueError(f"{src.path}: unexpected layout, found {lf!r}; expected runNN/class_labels.txt")
        for line_no, line in enumerate(src.read(lf).decode("utf-8", "replace").splitlines(), 1):
            if not line.strip():
                continue
            m = _LABEL_LINE.match(line)
            if m is None:
                raise ValueError(f"{src.path}:{lf} line {line_no}: expected '[runNN/]test/itemKK.png "
                                 f"[runNN/]training/classJJ.png'; found {line.strip()!r}")
            test_name, train_name = prefix + m.group(1), prefix + m.group(2)
            for n in (test_name, train_name):
                if n not in names:
                    raise ValueError(f"{src.path}: {lf} names {n!r}, which is missing")
            key = f"{run}/{m.group(2).split('/')[-1][:-4]}"
            if key in runs:
                raise ValueError(f"{src.path}:{lf}: {m.group(2)} is listed twice")
            runs[key] = np.stack([_decode_png(src.read(train_name), f"{src.path}:{train_name}", image_size),
                                  _decode_png(src.read(test_name), f"{src.path}:{test_name}", image_size)])
    return runs


def load_omniglot(data_dir, image_size: int = 16) -> OmniglotData:
    """Read the Omniglot images found in data_dir (in memory; nothing is extracted).

    Looks for images_background.zip, images_background_small1.zip, images_background_small2.zip,
    images_evaluation.zip and all_runs.zip, or folders of the same names (reads whichever are present).

    Raises:
      FileNotFoundError: data_dir is missing or holds none of the expected files.
      ValueError: a file has an unexpected layout or an image is not 105 x 105.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"Omniglot folder {data_dir} does not exist; expected a folder with "
                                f"{_EXPECTED_FILES}")
    if not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise ValueError(f"image_size must be a positive int; got {image_size!r}")
    found = {name: _find(data_dir, name) for name in BACKGROUND_SETS + EVALUATION_SETS + (RUNS_SET,)}
    if not any(found.values()):
        present = sorted(p.name for p in data_dir.iterdir())[:20]
        raise FileNotFoundError(f"{data_dir} holds none of the Omniglot files; expected {_EXPECTED_FILES}; "
                                f"found {present}")
    background: dict[str, dict[str, np.ndarray]] = {}
    evaluation: dict[str, dict[str, np.ndarray]] = {}
    runs: dict[str, np.ndarray] = {}
    sources = []
    for name, path in found.items():
        if path is None:
            continue
        src = _Source(path)
        try:
            if name == RUNS_SET:
                runs = _read_runs(src, image_size)
            else:
                _read_alphabets(src, name, image_size, background if name in BACKGROUND_SETS else evaluation)
        finally:
            src.close()
        sources.append(str(path))

    def stack(d):
        return {k: np.stack([v[f] for f in sorted(v)]) for k, v in sorted(d.items())}

    return OmniglotData(stack(background), stack(evaluation), runs, tuple(sources))


def default_omniglot_dir() -> Path | None:
    """The project's shared data folder `<workspace>/shared/data/omniglot` if it exists (looked up next to the
    repository holding this package and next to the current directory), else None."""
    here = Path(__file__).resolve()
    candidates = [p / "shared" / "data" / "omniglot" for p in list(here.parents)[3:7]]
    candidates += [Path.cwd() / "shared" / "data" / "omniglot", Path.cwd().parent / "shared" / "data" / "omniglot"]
    for c in candidates:
        if c.is_dir():
            return c
    return None


# ----------------------------------------------------------------------------------------------------------------
# Data sets
# ----------------------------------------------------------------------------------------------------------------

def _check_count(name: str, n) -> int:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"{name} must be a positive int; got {n!r}")
    return int(n)


def oneshot_dataset(source: str = "digits", data_dir=None, n_train: int = 600, n_test: int = 1000,
                    config: EpisodeConfig | None = None, seed: int = 0,
                    train_digits: Sequence[int] = (0, 1, 2, 3, 4, 5),
                    test_digits: Sequence[int] = (6, 7, 8, 9)) -> OneShotData:
    """Training episodes and novel-class test episodes (class-disjoint by construction).

    Args:
      source: "digits" (scikit-learn digits, no files needed; train_digits vs test_digits) or "omniglot"
        (background characters for training; the 20 official runs, or images_evaluation, for testing).
      data_dir: the Omniglot folder (default: `default_omniglot_dir()`). Ignored for digits.
      n_train, n_test: numbers of episodes (balanced labels).
      config: token format; default DIGITS_CONFIG (8 x 8, 4 x 4 patches) or OMNIGLOT_CONFIG (16 x 16, 8 x 8).
      seed: seed of the episode sampling (train uses seed, test an independent stream of the same seed).

    Returns:
      OneShotData(train, test, config, train_classes, test_classes).
    """
    n_train, n_test = _check_count("n_train", n_train), _check_count("n_test", n_test)
    test_groups = None
    if source == "digits":
        config = config or DIGITS_CONFIG
        overlap = set(map(int, train_digits)) & set(map(int, test_digits))
        if overlap:
            raise ValueError(f"train_digits and test_digits must be disjoint; both hold {sorted(overlap)}")
        train_imgs = load_digits_by_class(config.image_size, train_digits)
        test_imgs = load_digits_by_class(config.image_size, test_digits)
    elif source == "omniglot":
        config = config or OMNIGLOT_CONFIG
        if data_dir is None:
            data_dir = default_omniglot_dir()
            if data_dir is None:
                raise FileNotFoundError("no Omniglot folder given and none found at <workspace>/shared/data/"
                                        f"omniglot; pass data_dir= a folder with {_EXPECTED_FILES}")
        om = load_omniglot(data_dir, config.image_size)
        if not om.background:
            raise ValueError(f"{data_dir}: no training classes; expected one of "
                             f"{', '.join(n + '.zip' for n in BACKGROUND_SETS)}")
        train_imgs = om.background
        if om.runs:
            test_imgs, test_groups = om.runs, om.run_groups()
        elif om.evaluation:
            test_imgs = om.evaluation
        else:
            raise ValueError(f"{data_dir}: no novel test classes; expected {RUNS_SET}.zip or "
                             "images_evaluation.zip")
    else:
        raise ValueError(f"source must be 'digits' or 'omniglot'; got {source!r}")
    train = make_episodes(train_imgs, n_train, config, np.random.default_rng([seed, 0]))
    test = make_episodes(test_imgs, n_test, config, np.random.default_rng([seed, 1]), groups=test_groups)
    return OneShotData(train, test, config, tuple(sorted(train_imgs)), tuple(sorted(test_imgs)))


def digits_ood_episodes(n_episodes: int = 1000, config: EpisodeConfig = OMNIGLOT_CONFIG,
                        digits: tuple[int, int] = (0, 1), seed: int = 0) -> Episodes:
    """Out-of-distribution episodes from scikit-learn digits in the token format of `config` (spec E.1 uses
    MNIST 0 vs 1): the digits are resized to config.image_size so an Omniglot-trained model accepts them."""
    n_episodes = _check_count("n_episodes", n_episodes)
    if len(digits) != 2 or int(digits[0]) == int(digits[1]):
        raise ValueError(f"digits must be two different digit classes; got {digits!r}")
    imgs = load_digits_by_class(config.image_size, digits)
    return make_episodes(imgs, n_episodes, config, np.random.default_rng([seed, 2]))
