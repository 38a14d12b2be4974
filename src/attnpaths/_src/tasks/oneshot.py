"""One-shot in-context image classification: images of classes -> 2-way 1-shot episodes (spec E.1, E.2).

An episode is a sequence of three images cut into p x p patches (row-major patches, image-major order):

    [support of label 0 or 1] [the other support] [query, label token 2 = "unknown"]

(the two supports in random order). Each image is (optionally) turned back to dark strokes on white and
normalised by a pixel mean and std, as the authors' torchvision pipeline does; its grey value is repeated over
`channels` channels (the paper: 3), so a patch vector is p*p*channels long in the "(p1 p2 c)" order. Every patch
token is LayerNorm'ed (no affine, eps 1e-5 as PyTorch), then a sinusoidal positional table (normalised by its
global mean and std) and a FIXED label embedding (a (3, d) N(0, 1) table drawn from `EpisodeConfig.label_seed`,
added to every patch of an image) are ADDED. The result is the gradient-descent network's x_0 and the theory's
input, stored as (P, N0 = d, T = 3 n_patches) with tokens as columns (spec A.1). The target is +1 if the query
belongs to the class of the support labelled 1, else -1.

The paper's format (spec E.1-E.2): 32 x 32 images, 3 channels, 8 x 8 patches -> N0 = 192, T = 48, dark strokes,
pixel mean 0.922 and std 0.084 (`PAPER_CONFIG`).

`make_episodes` draws a fixed set of episodes; `EpisodeBatches` draws fresh ones at every training step (a pure
function of (seed, step)), so a network never cycles through a fixed pool. Where the images come from is a data
source (`attnpaths._src.tasks.sources`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Mapping, NamedTuple, Sequence

import numpy as np

from attnpaths._src.checks import as_count
from attnpaths._src.store import data_hash


@dataclass(frozen=True)
class EpisodeConfig:
    """Token format of the episodes (spec E.2).

    image_size: side S of the (square) images; must be a multiple of patch_size.
    patch_size: side p of the patches.
    channels: the grey value repeated over this many channels; the token width is d = N0 = p * p * channels.
    dark_strokes: feed dark strokes on a white background (the original Omniglot PNGs, spec E.1) instead of the
      loaders' bright strokes on black.
    pixel_mean, pixel_std: pixels are normalised as (v - mean) / std before the LayerNorm (spec E.1: 0.922,
      0.084). Only the LayerNorm's eps makes this differ from (0, 1).
    label_seed: seed of the fixed N(0, 1) label-embedding table (3, d); change it only to study its effect.
    layer_norm_eps: epsilon of the per-patch LayerNorm (PyTorch's default 1e-5).
    """

    image_size: int = 8
    patch_size: int = 4
    channels: int = 1
    dark_strokes: bool = False
    pixel_mean: float = 0.0
    pixel_std: float = 1.0
    label_seed: int = 0
    layer_norm_eps: float = 1e-5

    def __post_init__(self):
        for name in ("image_size", "patch_size", "channels"):
            as_count(name, getattr(self, name))
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size must be a multiple of patch_size; got image_size={self.image_size}, "
                             f"patch_size={self.patch_size}")
        if not self.layer_norm_eps > 0:
            raise ValueError(f"layer_norm_eps must be > 0; got {self.layer_norm_eps}")
        if not (np.isfinite(self.pixel_std) and self.pixel_std > 0 and np.isfinite(self.pixel_mean)):
            raise ValueError(f"pixel_std must be > 0 and pixel_mean finite; got {self.pixel_mean}, {self.pixel_std}")

    @property
    def n_patches(self) -> int:
        """Patches per image, (S / p)^2."""
        return (self.image_size // self.patch_size) ** 2

    @property
    def token_dim(self) -> int:
        """Token width d = N0 = p^2 * channels."""
        return self.patch_size ** 2 * self.channels

    @property
    def n_tokens(self) -> int:
        """Sequence length T = 3 n_patches (two supports and the query)."""
        return 3 * self.n_patches


DIGITS_CONFIG = EpisodeConfig(image_size=8, patch_size=4)
OMNIGLOT_CONFIG = EpisodeConfig(image_size=16, patch_size=8)
PAPER_CONFIG = EpisodeConfig(image_size=32, patch_size=8, channels=3, dark_strokes=True, pixel_mean=0.922,
                             pixel_std=0.084)


class Episodes(NamedTuple):
    """A set of episodes.

    x: (n, N0, T) float64, tokens as columns (the theory's layout, spec A.1).
    y: (n,) float64 in {-1, +1}: +1 if the query's class is the one of the support labelled 1.
    classes: (n, 2) str: the class keys given label 0 and label 1 in each episode.
    labels: (n, 3) int: the label token of each image (the two supports' 0 and 1 in their order, then 2).
    """

    x: np.ndarray
    y: np.ndarray
    classes: np.ndarray
    labels: np.ndarray | None = None


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


def patchify(images: np.ndarray, patch_size: int, channels: int = 1) -> np.ndarray:
    """(n, S, S) -> (n, (S/p)^2, p^2 channels): patches in row-major order, pixels "(p1 p2 c)" row-major inside
    a patch, each grey value repeated over the channels."""
    n, s, _ = images.shape
    g = s // patch_size
    patches = (images.reshape(n, g, patch_size, g, patch_size).transpose(0, 1, 3, 2, 4)
               .reshape(n, g * g, patch_size * patch_size))
    return np.repeat(patches, channels, axis=-1) if channels > 1 else patches


def layer_norm(v: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """LayerNorm over the last axis without affine parameters (biased variance, as PyTorch)."""
    mu = v.mean(axis=-1, keepdims=True)
    var = v.var(axis=-1, keepdims=True)
    return (v - mu) / np.sqrt(var + eps)


def image_patches(images: np.ndarray, config: EpisodeConfig) -> np.ndarray:
    """The normalised patch vectors of images: (n, S, S) (bright strokes in [0, 1]) -> (n, n_patches, d), each
    patch LayerNorm'ed (spec E.2). A function of one image at a time (episodes reuse it: `EpisodeBatches`)."""
    pixels = images
    if config.dark_strokes:
        pixels = 1.0 - pixels
    pixels = (pixels - config.pixel_mean) / config.pixel_std
    return layer_norm(patchify(pixels, config.patch_size, config.channels), config.layer_norm_eps)


def episode_tokens(patches: np.ndarray, labels: np.ndarray, config: EpisodeConfig) -> np.ndarray:
    """Token matrix of episodes from their images' normalised patches (n, 3, n_patches, d) and label tokens
    (n, 3): adds the label embedding and the positions -> x_0 (n, d, T) (spec E.2)."""
    n = patches.shape[0]
    patches = patches + label_embedding(config)[labels][:, :, None, :]
    seq = patches.reshape(n, config.n_tokens, config.token_dim)
    seq = seq + positional_table(config.n_tokens, config.token_dim)[None]
    return np.ascontiguousarray(seq.transpose(0, 2, 1))


def tokens(images: np.ndarray, labels: np.ndarray, config: EpisodeConfig) -> np.ndarray:
    """Token matrix of episodes: images (n, 3, S, S) (bright strokes in [0, 1]) with label tokens (n, 3) ->
    x_0 (n, d, T) (spec E.2)."""
    n = images.shape[0]
    patches = image_patches(images.reshape(n * 3, config.image_size, config.image_size), config)
    return episode_tokens(patches.reshape(n, 3, config.n_patches, config.token_dim), labels, config)


def patch_correlation_baseline(episodes: Episodes, config: EpisodeConfig) -> np.ndarray:
    """A trivial one-shot classifier, the reference line of the trained networks: the answer is the label of the
    support whose normalised patches (the tokens less the positions and label embedding, concatenated) have the
    larger cosine similarity with the query's.

    Args:
      episodes: episodes drawn by this module (they carry `labels`).
      config: their token format.

    Returns:
      (n,) answers in {-1, +1} (compare with episodes.y).
    """
    if episodes.labels is None:
        raise ValueError("episodes.labels is None; the baseline needs the episodes' label tokens (draw them with "
                         "make_episodes)")
    n = len(episodes.y)
    seq = episodes.x.transpose(0, 2, 1).reshape(n, 3, config.n_patches, config.token_dim)
    pos = positional_table(config.n_tokens, config.token_dim).reshape(3, config.n_patches, config.token_dim)
    seq = seq - pos[None] - label_embedding(config)[episodes.labels][:, :, None, :]
    flat = seq.reshape(n, 3, -1)
    flat = flat / np.linalg.norm(flat, axis=-1, keepdims=True)
    similarity = np.einsum("nk,nsk->ns", flat[:, 2], flat[:, :2])
    closer = episodes.labels[np.arange(n), np.argmax(similarity, axis=1)]
    return np.where(closer == 1, 1.0, -1.0)


# ----------------------------------------------------------------------------------------------------------------
# Drawing episodes
# ----------------------------------------------------------------------------------------------------------------

def check_images(images_by_class: Mapping[str, np.ndarray], config: EpisodeConfig) -> dict[str, np.ndarray]:
    """Class key -> (n_c, S, S) float64 images, checked (n_c >= 2 drawings, finite, the config's size)."""
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
    few = sorted(k for k, v in out.items() if len(v) < 2)
    if few:
        raise ValueError(f"every class needs >= 2 drawings (one support, one query); classes {few[:5]} have "
                         f"fewer")
    return out


def pair_pools(images: Mapping[str, np.ndarray], groups) -> list[list[str]]:
    """Groups of classes among which the two classes of an episode are drawn (None: one group of all)."""
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
    if not pools:
        raise ValueError(f"too few classes: a 2-way episode needs two classes in one group; got {len(images)} "
                         "classes" + ("" if groups is None else f" in {len(groups)} groups"))
    return pools


def _max_distinct(images: Mapping[str, np.ndarray], pools: list[list[str]]) -> int:
    """Number of distinct episodes (class pair, labels, drawings, support order) the pools allow."""
    total = 0
    for g in pools:
        n = np.array([len(images[c]) for c in g], dtype=np.float64)
        # query class q (n_q (n_q - 1) ordered support/query drawings) x other class o (n_o drawings) x 2 orders
        # x 2 label assignments
        total += 4 * float(np.sum((n * (n - 1))[:, None] * n[None, :]) - np.sum(n * (n - 1) * n))
    return int(min(total, 2 ** 62))


def _draw(images: Mapping[str, np.ndarray], pools: list[list[str]], n_episodes: int, config: EpisodeConfig,
          rng: np.random.Generator, patches: Mapping[str, np.ndarray] | None = None,
          variant_rng: np.random.Generator | None = None) -> Episodes:
    """Episodes from checked images and pools (no validation: the inner loop of make_episodes / batches).
    `patches`: class key -> `image_patches` of its images, computed once by the caller (else computed here);
    with `variant_rng`, class key -> (variants, n_c, n_patches, d) patches of jittered copies of every drawing,
    and each image of an episode is one variant drawn from `variant_rng` (a stream apart from `rng`, so the
    episodes' classes, drawings and labels are those drawn without variants)."""
    y = np.where(rng.permutation(n_episodes) < n_episodes // 2, -1.0, 1.0)
    picks = np.empty((n_episodes, 3, 2), dtype=object)  # (class key, drawing) of support, support, query
    labels = np.empty((n_episodes, 3), dtype=np.int64)
    classes = np.empty((n_episodes, 2), dtype=object)
    for i in range(n_episodes):
        pool = pools[rng.integers(len(pools))]
        pair = [pool[j] for j in rng.choice(len(pool), size=2, replace=False)]  # pair[0] gets label 0
        q = int(y[i] > 0)
        d_sup, d_query = rng.choice(len(images[pair[q]]), size=2, replace=False)
        supports = {q: (pair[q], d_sup), 1 - q: (pair[1 - q], rng.integers(len(images[pair[1 - q]])))}
        order = rng.permutation(2)
        picks[i] = supports[order[0]], supports[order[1]], (pair[q], d_query)
        labels[i] = (order[0], order[1], 2)
        classes[i] = pair
    source = images if patches is None else patches
    if variant_rng is None:
        chosen = np.stack([source[c][d] for c, d in picks.reshape(-1, 2)])
    else:
        variant = variant_rng.integers(len(next(iter(patches.values()))), size=3 * n_episodes)
        chosen = np.stack([source[c][v, d] for (c, d), v in zip(picks.reshape(-1, 2), variant)])
    if patches is None:
        x = tokens(chosen.reshape(n_episodes, 3, config.image_size, config.image_size), labels, config)
    else:
        x = episode_tokens(chosen.reshape(n_episodes, 3, config.n_patches, config.token_dim), labels, config)
    return Episodes(x, y, classes.astype(str), labels)


def make_episodes(images_by_class: Mapping[str, np.ndarray], n_episodes: int, config: EpisodeConfig,
                  rng: np.random.Generator, groups: Sequence[Sequence[str]] | None = None) -> Episodes:
    """2-way 1-shot in-context episodes (spec E.1) with balanced labels.

    Args:
      images_by_class: class key -> (n_c, S, S) images (S = config.image_size, bright strokes in [0, 1]),
        n_c >= 2 drawings per class.
      n_episodes: number of episodes; exactly floor(n/2) have y = -1 and the rest y = +1, in random order.
      config: the token format.
      rng: NumPy generator (the only source of randomness).
      groups: optional lists of class keys; the two classes of an episode come from one group (chosen
        uniformly among the groups with >= 2 classes). Default: any two classes.

    Returns:
      Episodes(x (n, d, T), y (n,), classes (n, 2)).
    """
    images = check_images(images_by_class, config)
    n_episodes = as_count("n_episodes", n_episodes)
    pools = pair_pools(images, groups)
    if n_episodes > _max_distinct(images, pools):
        raise ValueError(f"too few classes/drawings for {n_episodes} distinct episodes: {len(images)} classes "
                         f"allow at most {_max_distinct(images, pools)}")
    return _draw(images, pools, n_episodes, config, rng)


@dataclass(frozen=True)
class Jitter:
    """Small random affine distortions of a drawing (the same character, not a new class): a rotation by
    U(-degrees, degrees), a scale by U(1 - scale, 1 + scale) and a shift by U(-shift, shift) x S pixels on each
    axis, about the image centre (bilinear, background 0 = no stroke)."""

    degrees: float = 10.0
    scale: float = 0.1
    shift: float = 0.06

    def apply(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(n, S, S) -> (n, S, S): one independent distortion per image."""
        n, size, _ = images.shape
        angle = np.deg2rad(rng.uniform(-self.degrees, self.degrees, n))
        zoom = rng.uniform(1 - self.scale, 1 + self.scale, n)
        shift = rng.uniform(-self.shift, self.shift, (n, 2)) * size
        return np.stack([affine_about_centre(images[i], angle[i], zoom[i], shift[i]) for i in range(n)])


def affine_about_centre(image: np.ndarray, angle: float, zoom: float, shift) -> np.ndarray:
    """(S, S) image rotated by `angle` (radians), scaled by `zoom` about its centre and moved by `shift` pixels
    (rows, columns); bilinear, background 0, clipped to [0, 1]."""
    from scipy.ndimage import affine_transform

    centre = (image.shape[0] - 1) / 2 * np.ones(2)
    c, s = np.cos(angle), np.sin(angle)
    inverse = np.array([[c, s], [-s, c]]) / zoom  # output pixel -> input pixel
    offset = centre - inverse @ (centre + np.asarray(shift, dtype=np.float64))
    return np.clip(affine_transform(image, inverse, offset, order=1, mode="constant", cval=0.0), 0.0, 1.0)


class EpisodeBatches:
    """Fresh training episodes at every step (a `training.BatchSource`): the batch of step `step` is drawn
    from the generator seeded by (seed, 7, step), so it never repeats a fixed pool and a resumed run sees the
    same batches. Every image's normalised patches are computed once, here, not in every batch (the same
    numbers: the normalisation is a function of one image).

    Args:
      images_by_class: the training classes (class key -> (n_c, S, S) images).
      config: the token format.
      groups: optional class groups (as `make_episodes`).
      augment: jittered copies of every drawing made once (`Jitter`, seeded by `augment_seed`); each image of a
        training episode is then the original or one of its copies, uniformly (stream (seed, 8, step)); 0: off,
        the batches are those of the plain drawings.
      jitter: the distortions of the copies.
    """

    def __init__(self, images_by_class: Mapping[str, np.ndarray], config: EpisodeConfig, groups=None,
                 augment: int = 0, augment_seed: int = 0, jitter: Jitter = Jitter()):
        self.images = check_images(images_by_class, config)
        self.pools = pair_pools(self.images, groups)
        self.config = config
        self.input_width = config.token_dim
        self.augment, self.augment_seed, self.jitter = as_count("augment", augment, minimum=0), augment_seed, jitter
        self.patches = {k: image_patches(v, config) for k, v in self.images.items()}
        if self.augment:
            rng = np.random.default_rng([augment_seed, 9])
            self.patches = {k: np.stack([p] + [image_patches(jitter.apply(self.images[k], rng), config)
                                               for _ in range(self.augment)])
                            for k, p in self.patches.items()}

    def fingerprint(self) -> str:
        keys = sorted(self.images)
        names = hashlib.sha256("\n".join(keys).encode()).hexdigest()
        extra = () if not self.augment else (np.array([self.augment, self.augment_seed, self.jitter.degrees,
                                                       self.jitter.scale, self.jitter.shift], dtype=np.float64),)
        return names + data_hash(*(self.images[k] for k in keys), label_embedding(self.config),
                                 np.array([self.config.image_size, self.config.patch_size, self.config.channels,
                                           float(self.config.dark_strokes), self.config.pixel_mean,
                                           self.config.pixel_std, self.config.layer_norm_eps], dtype=np.float64),
                                 *extra)

    def batch(self, seed: int, step: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        variants = np.random.default_rng([seed, 8, step]) if self.augment else None
        ep = _draw(self.images, self.pools, size, self.config, np.random.default_rng([seed, 7, step]), self.patches,
                   variants)
        return ep.x, ep.y
