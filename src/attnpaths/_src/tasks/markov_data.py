"""Experiment 1's data: hidden Markov chain sequences (spec D.1); the heads and networks are in `markov.py`.

Data (D.1). Each sequence has a hidden chain s_1, ..., s_{T_tok} in {+1, -1}. s_1 is +1 or -1 with probability 1/2;
each later state equals the previous one with probability p_stay: 0.7 for class +1 ("persistent"), 0.3 for class
-1 ("switching"). The visible token is v_plus (s = +1) or v_minus (s = -1) plus Gaussian noise, with

    v_plus = sqrt(2) [1 ... 1, 0 ... 0],  v_minus = sqrt(2) [0 ... 0, 1 ... 1]   (F entries, |v|^2 = F).

The noise is an i.i.d. N(0, I_F) vector split into three orthogonal components, each scaled by its strength:
along e_par = (v_plus + v_minus)/|.| (the code's "parallel"), along e_perp = (v_plus - v_minus)/|.| (the code's
"perpendicular") and the (F - 2)-dimensional rest (the paper's sigma_perp, "out of plane"). A BOS token with zero
features and no noise is prepended at position 0, and a one-hot position block of size T_seq = T_tok + 1 is
concatenated below the features, so one example is x in R^{N0 x T_seq}, N0 = F + T_seq (231 x 31 by default).

Randomness: NumPy `default_rng` (the authors used torch seeds, so the numbers differ from theirs; the
distributions are the same). The same seed gives the same arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from attnpaths._src.checks import as_count


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
