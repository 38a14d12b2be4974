"""Experiment 1: classification of hidden Markov chain sequences (spec D.1-D.3).

Data (D.1). Each sequence has a hidden chain s_1, ..., s_{T_tok} in {+1, -1}. s_1 is +1 or -1 with probability 1/2;
each later state equals the previous one with probability p_stay: 0.7 for class +1 ("persistent"), 0.3 for class
-1 ("switching"). The visible token is v_plus (s = +1) or v_minus (s = -1) plus Gaussian noise, with

    v_plus = sqrt(2) [1 ... 1, 0 ... 0],  v_minus = sqrt(2) [0 ... 0, 1 ... 1]   (F entries, |v|^2 = F).

The noise is an i.i.d. N(0, I_F) vector split into three orthogonal components, each scaled by its strength:
along e_par = (v_plus + v_minus)/|.| (the code's "parallel"), along e_perp = (v_plus - v_minus)/|.| (the code's
"perpendicular") and the (F - 2)-dimensional rest (the paper's sigma_perp, "out of plane"). A BOS token with zero
features and no noise is prepended at position 0, and a one-hot position block of size T_seq = T_tok + 1 is
concatenated below the features, so one example is x in R^{N0 x T_seq}, N0 = F + T_seq (231 x 31 by default).

Heads (D.2). The designed heads are bilinear, A_st = beta x_s^T W x_t with the KEY s on the left and the softmax
over keys (spec H.1). W is block-diagonal over [features (F) | positions (T_seq)] except for the random
cross blocks of the `blank` head. The functions here return the UNSCALED W (beta not multiplied in); `markov_head`
and `markov_layer` wrap them into `BilinearHeads(W, beta)`.

Networks (D.3). `markov_preset("4paths")` and `markov_preset("2paths")` build the two networks of Fig. 2 with
their GP reference networks, the data seeds (train 27, test 59) and the widths of the sweep.

Randomness: NumPy `default_rng` everywhere (the authors used torch seeds, so the numbers differ from theirs; the
distributions are the same). The same seed gives the same arrays.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from attnpaths._src.attention import BilinearHeads
from attnpaths._src.checks import as_count
from attnpaths._src.registry import Registry
from attnpaths._src.spec import NetworkSpec

BOS_STRENGTH = 1.5
"""Position score of the BOS key in the same/different-token heads: (1 + 1 + max(1 - 1, 1)) / 2 (spec D.2)."""

# Seeds of the heads (the `seed_everything` calls of the authors' LOOP script, spec D.2). Only the blank heads
# draw random numbers; the main heads are deterministic, the seeds are kept for the record.
SEED_LAYER1_MAIN = 127
SEED_LAYER1_BLANK = 147
SEED_LAYER2_MAIN = 217
SEED_LAYER2_BLANK = 247
TRAIN_SEED = 27
TEST_SEED = 59


# ---------------------------------------------------------------------------------------------------------------
# configuration and data
# ---------------------------------------------------------------------------------------------------------------


def _check_probability(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a probability in (0, 1); got {value!r}") from None
    if not (0.0 < v < 1.0):
        raise ValueError(f"{name} must be a probability in (0, 1); got {value!r}")
    return v


def _check_nonnegative(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number >= 0; got {value!r}") from None
    if not (math.isfinite(v) and v >= 0.0):
        raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
    return v


@dataclass(frozen=True)
class MarkovConfig:
    """Parameters of the hidden Markov chain task (spec D.1).

    n_tokens: T_tok, tokens per sequence without the BOS (T_seq = T_tok + 1).
    n_features: F, feature width (even, >= 2; N0 = F + T_seq).
    p_stay_plus: probability of keeping the hidden state in class +1 (persistent chains).
    p_stay_minus: the same for class -1 (switching chains).
    noise_parallel: noise strength along (v_plus + v_minus) (the code's "parallel").
    noise_perpendicular: noise strength along (v_plus - v_minus) (the code's "perpendicular"; it disturbs the
      good head, which reads the state from this direction).
    noise_out_of_plane: noise strength in the (F - 2)-dimensional rest (the paper's sigma_perp).
    """

    n_tokens: int = 30
    n_features: int = 200
    p_stay_plus: float = 0.7
    p_stay_minus: float = 0.3
    noise_parallel: float = 1.0
    noise_perpendicular: float = 1.0
    noise_out_of_plane: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "n_tokens", as_count("n_tokens", self.n_tokens))
        F = as_count("n_features", self.n_features, minimum=2)
        if F % 2:
            raise ValueError(f"n_features must be even (v_plus and v_minus each cover half); got {F}")
        object.__setattr__(self, "n_features", F)
        for name in ("p_stay_plus", "p_stay_minus"):
            object.__setattr__(self, name, _check_probability(name, getattr(self, name)))
        for name in ("noise_parallel", "noise_perpendicular", "noise_out_of_plane"):
            object.__setattr__(self, name, _check_nonnegative(name, getattr(self, name)))

    @property
    def seq_len(self) -> int:
        """T_seq = T_tok + 1 (with the BOS token)."""
        return self.n_tokens + 1

    @property
    def input_width(self) -> int:
        """N0 = F + T_seq, the full token width (used by every 1/sqrt(N0), spec A.1)."""
        return self.n_features + self.seq_len


def _check_config(config) -> MarkovConfig:
    if not isinstance(config, MarkovConfig):
        raise ValueError(f"config must be a MarkovConfig; got {type(config).__name__}")
    return config


def state_vectors(config: MarkovConfig) -> tuple[np.ndarray, np.ndarray]:
    """(v_plus, v_minus), each (F,) float64: sqrt(2) on the first / second half of the features, |v|^2 = F."""
    config = _check_config(config)
    F = config.n_features
    v_plus = np.zeros(F)
    v_minus = np.zeros(F)
    v_plus[: F // 2] = math.sqrt(2.0)
    v_minus[F // 2:] = math.sqrt(2.0)
    return v_plus, v_minus


@dataclass(frozen=True, eq=False)
class MarkovData:
    """A class-sorted data set of the Markov task.

    x: (P, N0, T_seq) float64 inputs, tokens as columns; rows [0, F) are the features, rows [F, N0) the one-hot
      position; column 0 is the BOS token (zero features).
    y: (P,) float64 labels, +1 for the first P/2 examples (persistent chains), -1 for the rest.
    hidden: (P, T_tok) int64 hidden states s_1 ... s_{T_tok} in {+1, -1} (the BOS has none).
    v_plus, v_minus: (F,) float64 clean tokens of the two states.
    config: the task parameters.
    """

    x: np.ndarray
    y: np.ndarray
    hidden: np.ndarray
    v_plus: np.ndarray
    v_minus: np.ndarray
    config: MarkovConfig

    @property
    def n_examples(self) -> int:
        return self.x.shape[0]


def markov_dataset(config: MarkovConfig, n_examples: int, seed: int) -> MarkovData:
    """Draw P = n_examples sequences, P/2 per class, class +1 first (spec D.1).

    Args:
      config: the task parameters.
      n_examples: P, positive and even.
      seed: seed of `numpy.random.default_rng`; the same seed gives identical data.

    Returns:
      MarkovData with x (P, F + T_seq, T_seq), y (P,), hidden (P, T_tok), v_plus / v_minus (F,).
    """
    config = _check_config(config)
    P = as_count("n_examples", n_examples, minimum=2)
    if P % 2:
        raise ValueError(f"n_examples must be even (P/2 sequences per class); got {P}")
    rng = np.random.default_rng(as_count("seed", seed, minimum=0))
    T_tok, F, T_seq = config.n_tokens, config.n_features, config.seq_len
    half = P // 2

    y = np.concatenate([np.ones(half), -np.ones(half)])
    p_stay = np.concatenate([np.full(half, config.p_stay_plus), np.full(half, config.p_stay_minus)])

    # Hidden chains: s_1 = +-1 with probability 1/2, then s_t = s_{t-1} * (+1 if stay else -1).
    first = np.where(rng.random(P) < 0.5, 1, -1).astype(np.int64)
    stay = rng.random((P, T_tok - 1)) < p_stay[:, None]
    steps = np.concatenate([np.ones((P, 1), dtype=np.int64), np.where(stay, 1, -1).astype(np.int64)], axis=1)
    hidden = first[:, None] * np.cumprod(steps, axis=1)

    v_plus, v_minus = state_vectors(config)
    clean = np.where(hidden[..., None] > 0, v_plus, v_minus)  # (P, T_tok, F)

    # Noise: iid N(0, I_F) split into the parts along e_par, along e_perp and the out-of-plane rest.
    eta = rng.standard_normal((P, T_tok, F))
    e_par = (v_plus + v_minus) / np.linalg.norm(v_plus + v_minus)
    e_perp = (v_plus - v_minus) / np.linalg.norm(v_plus - v_minus)
    c_par = eta @ e_par
    c_perp = eta @ e_perp
    along_par = c_par[..., None] * e_par
    along_perp = c_perp[..., None] * e_perp
    out_of_plane = eta - along_par - along_perp
    noise = (config.noise_parallel * along_par + config.noise_perpendicular * along_perp
             + config.noise_out_of_plane * out_of_plane)

    x = np.zeros((P, T_seq, F + T_seq))  # tokens as rows while building
    x[:, 1:, :F] = clean + noise
    x[:, :, F:] = np.eye(T_seq)
    x = np.ascontiguousarray(x.transpose(0, 2, 1))
    return MarkovData(x=x, y=y, hidden=hidden, v_plus=v_plus, v_minus=v_minus, config=config)


# ---------------------------------------------------------------------------------------------------------------
# designed heads
# ---------------------------------------------------------------------------------------------------------------


def _state_readout(config: MarkovConfig) -> np.ndarray:
    """q = (v_plus - v_minus) / F, so q . v_plus = +1 and q . v_minus = -1. Shape (F,)."""
    v_plus, v_minus = state_vectors(config)
    return (v_plus - v_minus) / config.n_features


def previous_token_positions(config: MarkovConfig) -> np.ndarray:
    """Position block (T_seq, T_seq) [key, query] of the same/different-token heads (spec D.2).

    [key i, query i + 1] = 1 for the token positions i = 1 .. T_tok - 1 (each query looks at the previous token);
    row 0 (key = BOS) = BOS_STRENGTH = 1.5 for every query >= 1, and [0, 0] = 0.
    """
    config = _check_config(config)
    T_tok, T_seq = config.n_tokens, config.seq_len
    block = np.zeros((T_seq, T_seq))
    i = np.arange(1, T_tok)
    block[i, i + 1] = 1.0
    block[0, 1:] = BOS_STRENGTH
    return block


def _block_diagonal(config: MarkovConfig, features: np.ndarray, positions: np.ndarray) -> np.ndarray:
    F = config.n_features
    W = np.zeros((config.input_width, config.input_width))
    W[:F, :F] = features
    W[F:, F:] = positions
    return W


def same_token_W(config: MarkovConfig) -> np.ndarray:
    """The "good" head: attend the previous token if it is in the same state, else mostly the BOS (spec D.2).

    Returns W (N0, N0), key on the left, unscaled: feature block q q^T with q = (v_plus - v_minus)/F, position
    block `previous_token_positions`. With beta = 10 the previous token scores ~20 if it has the same state and
    ~0 if not, the BOS 15 and other same-state tokens ~10.
    """
    config = _check_config(config)
    q = _state_readout(config)
    return _block_diagonal(config, np.outer(q, q), previous_token_positions(config))


def different_token_W(config: MarkovConfig) -> np.ndarray:
    """Like `same_token_W` with feature block -q q^T: attends the previous token if its state differs. (N0, N0)."""
    config = _check_config(config)
    q = _state_readout(config)
    return _block_diagonal(config, -np.outer(q, q), previous_token_positions(config))


def uniform_W(config: MarkovConfig) -> np.ndarray:
    """Feature block 0, position block all ones: every score is the same, attention exactly 1/T_seq. (N0, N0)."""
    config = _check_config(config)
    T_seq = config.seq_len
    return _block_diagonal(config, np.zeros((config.n_features,) * 2), np.ones((T_seq, T_seq)))


def blank_W(config: MarkovConfig, perturbation: float, rng) -> np.ndarray:
    """Zeros (uniform attention) plus random perturbations of strength p = perturbation (spec D.2).

    Feature block += p N(0,1)/F; position block += p N(0,1); the two cross blocks (feature x position and
    position x feature) += p N(0,1)/sqrt(F). The draws are made in that order (features (F, F), positions
    (T_seq, T_seq), [features key, position query] (F, T_seq), [position key, feature query] (T_seq, F)) from
    `numpy.random.default_rng(rng)`, so rng may be a Generator or an int seed.

    Returns W (N0, N0), unscaled. perturbation = 0 gives exactly zeros.
    """
    config = _check_config(config)
    p = _check_nonnegative("perturbation", perturbation)
    if isinstance(rng, bool) or not isinstance(rng, (numbers.Integral, np.random.Generator)):
        raise ValueError(f"rng must be a numpy Generator or an int seed (None is not reproducible); "
                         f"got {type(rng).__name__}")
    gen = np.random.default_rng(rng)
    F, T_seq = config.n_features, config.seq_len
    W = np.zeros((config.input_width, config.input_width))
    W[:F, :F] = p * gen.standard_normal((F, F)) / F
    W[F:, F:] = p * gen.standard_normal((T_seq, T_seq))
    W[:F, F:] = p * gen.standard_normal((F, T_seq)) / math.sqrt(F)
    W[F:, :F] = p * gen.standard_normal((T_seq, F)) / math.sqrt(F)
    return W


HEAD_BUILDERS: Registry = Registry("Markov head kind")
"""kind -> function(config, perturbation, rng_seed) -> W (N0, N0); register a function to add a head kind."""
HEAD_BUILDERS.register("same_token", lambda config, perturbation, seed: same_token_W(config))
HEAD_BUILDERS.register("different_token", lambda config, perturbation, seed: different_token_W(config))
HEAD_BUILDERS.register("uniform", lambda config, perturbation, seed: uniform_W(config))
HEAD_BUILDERS.register("blank", lambda config, perturbation, seed: blank_W(config, perturbation,
                                                                           as_count("seed", seed, minimum=0)))


def head_W(kind: str, config: MarkovConfig, perturbation: float = 1.0, seed: int = 0) -> np.ndarray:
    """The unscaled W (N0, N0) of one designed head; perturbation and seed are used by 'blank' only."""
    if kind not in HEAD_BUILDERS:
        raise ValueError(f"kind must be one of {HEAD_BUILDERS.names()}; got {kind!r}")
    return HEAD_BUILDERS[kind](config, perturbation, seed)


def markov_head(kind: str, config: MarkovConfig, beta: float = 10.0, perturbation: float = 1.0,
                seed: int = 0) -> BilinearHeads:
    """One designed head as `BilinearHeads` with W of shape (1, N0, N0) and inverse temperature beta.

    kind: 'same_token', 'different_token', 'uniform' or 'blank'. perturbation and seed (an int for
    `numpy.random.default_rng`) are used by 'blank' only.
    """
    return BilinearHeads(head_W(kind, config, perturbation, seed)[None], beta=_check_beta(beta))


def _check_beta(beta) -> float:
    try:
        b = float(beta)
    except (TypeError, ValueError):
        raise ValueError(f"beta must be a finite number; got {beta!r}") from None
    if not math.isfinite(b):
        raise ValueError(f"beta must be a finite number; got {beta!r}")
    return b


def markov_layer(kinds: Sequence, config: MarkovConfig, beta: float = 10.0) -> BilinearHeads:
    """The heads of one attention layer stacked into `BilinearHeads` with W of shape (H_l, N0, N0).

    kinds: one entry per head, either a kind name or a tuple (kind, perturbation, seed) ((kind,) and
    (kind, perturbation) also work, with the defaults perturbation 1.0, seed 0).
    """
    if isinstance(kinds, str) or not isinstance(kinds, Sequence) or len(kinds) == 0:
        raise ValueError("kinds must be a non-empty list of head kinds or (kind, perturbation, seed) tuples; "
                         f"got {kinds!r}")
    Ws = []
    for entry in kinds:
        if isinstance(entry, str):
            entry = (entry,)
        if not isinstance(entry, (tuple, list)) or not 1 <= len(entry) <= 3:
            raise ValueError(f"each entry of kinds must be a kind or a tuple (kind, perturbation, seed); "
                             f"got {entry!r}")
        Ws.append(head_W(entry[0], config, *entry[1:]))
    return BilinearHeads(np.stack(Ws), beta=_check_beta(beta))


# ---------------------------------------------------------------------------------------------------------------
# the networks of Fig. 2
# ---------------------------------------------------------------------------------------------------------------

WIDTHS = (10, 30, 50, 100, 300, 500, 1000)


@dataclass(frozen=True, eq=False)
class MarkovPreset:
    """One network of experiment 1 with its data parameters and GP reference networks (spec D.3).

    name: '4paths' or '2paths'.
    config: the task parameters.
    spec: the network (heads per layer, readout 'last', T = 0.01, variances 1, widths 10 by default).
    attention: one `BilinearHeads` per layer (beta = 10).
    path_names: paper names of the paths in the library's order (path index = h1 H2 + h2, lower layer outermost).
    display_order: path indices in the order the paper plots them (g, d, a1, a2 for 4 paths).
    gp_references: name -> (NetworkSpec, attention list, path_names) of the reference networks whose GP
      limit (U = I) gives the reference lines of Fig. 2. They reuse the very same head matrices.
    n_train, n_test: P = 100 training and 1000 test sequences.
    widths: the widths N of the sweep.
    train_seed, test_seed: seeds of `markov_dataset` (27 and 59).
    """

    name: str
    config: MarkovConfig
    spec: NetworkSpec
    attention: list
    path_names: tuple
    display_order: tuple
    gp_references: dict = field(default_factory=dict)
    n_train: int = 100
    n_test: int = 1000
    widths: tuple = WIDTHS
    train_seed: int = TRAIN_SEED
    test_seed: int = TEST_SEED

    @property
    def n_paths(self) -> int:
        return self.spec.n_paths


MARKOV_NETWORKS: Registry = Registry("Markov network")
"""name -> function() -> MarkovPreset: the networks of experiment 1. Register a function to add one."""


def preset_names() -> tuple[str, ...]:
    """Names accepted by `markov_preset` (the registered Markov networks)."""
    return MARKOV_NETWORKS.names()


def _network(heads: tuple[int, ...]) -> NetworkSpec:
    return NetworkSpec(heads=heads, widths=10.0, variances=1.0, temperature=0.01, readout="last")


@MARKOV_NETWORKS.register("4paths")
def four_paths() -> MarkovPreset:
    """Fig. 2c,d: isotropic noise 1; layer 1 = [same_token, blank (p = 1, seed 147)], layer 2 = [uniform,
    blank (p = 1, seed 247)], beta = 10. Paths (g, a1, d, a2), displayed as g, d, a1, a2. GP references:
    'good' (layer 1 = [same_token], layer 2 = [uniform]; path g) and 'good+denoising' (layer 1 = [same_token,
    the same perturbed blank], layer 2 = [uniform]; paths g, d)."""
    beta = 10.0
    config = MarkovConfig()
    layer1 = markov_layer([("same_token", 0.0, SEED_LAYER1_MAIN), ("blank", 1.0, SEED_LAYER1_BLANK)], config, beta)
    layer2 = markov_layer([("uniform", 0.0, SEED_LAYER2_MAIN), ("blank", 1.0, SEED_LAYER2_BLANK)], config, beta)
    uniform = BilinearHeads(layer2.W[:1], beta=beta)
    good = (_network((1, 1)), [BilinearHeads(layer1.W[:1], beta=beta), uniform], ("g",))
    good_denoising = (_network((2, 1)), [layer1, uniform], ("g", "d"))
    return MarkovPreset(name="4paths", config=config, spec=_network((2, 2)), attention=[layer1, layer2],
                        path_names=("g", "a1", "d", "a2"), display_order=(0, 2, 1, 3),
                        gp_references={"good": good, "good+denoising": good_denoising})


@MARKOV_NETWORKS.register("2paths")
def two_paths() -> MarkovPreset:
    """Fig. 2e: out-of-plane noise 5, in-plane 1; layer 1 = [same_token, blank with perturbation 0 (uniform
    attention)], layer 2 = [uniform]. Paths (g, d); GP reference 'g+d' = the network itself."""
    beta = 10.0
    config = MarkovConfig(noise_out_of_plane=5.0)
    layer1 = markov_layer([("same_token", 0.0, SEED_LAYER1_MAIN), ("blank", 0.0, SEED_LAYER1_BLANK)], config, beta)
    layer2 = markov_layer([("uniform", 0.0, SEED_LAYER2_MAIN)], config, beta)
    spec = _network((2, 1))
    attention = [layer1, layer2]
    return MarkovPreset(name="2paths", config=config, spec=spec, attention=attention, path_names=("g", "d"),
                        display_order=(0, 1), gp_references={"g+d": (spec, list(attention), ("g", "d"))})


def markov_preset(name: str) -> MarkovPreset:
    """A registered network of experiment 1 (spec D.3): '4paths' (Fig. 2c,d) or '2paths' (Fig. 2e), or a user's.

    Raises ValueError naming the registered networks for an unknown name."""
    if name not in MARKOV_NETWORKS:
        raise ValueError(f"name must be one of {MARKOV_NETWORKS.names()}; got {name!r}")
    return MARKOV_NETWORKS[name]()


def markov_data(preset: MarkovPreset) -> tuple[MarkovData, MarkovData]:
    """(train, test) data of a preset: n_train with train_seed and n_test with test_seed."""
    if not isinstance(preset, MarkovPreset):
        raise ValueError(f"preset must be a MarkovPreset (see markov_preset); got {type(preset).__name__}")
    return (markov_dataset(preset.config, preset.n_train, preset.train_seed),
            markov_dataset(preset.config, preset.n_test, preset.test_seed))
