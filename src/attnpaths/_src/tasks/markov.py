"""Experiment 1: classification of hidden Markov chain sequences (spec D.1-D.3).

Data (D.1): `markov_data.py` (hidden chains, noisy tokens, a BOS token and one-hot positions); its names are
re-exported here.

Heads (D.2). The designed heads are bilinear, A_st = beta x_s^T W x_t with the KEY s on the left and the softmax
over keys (spec H.1). W is block-diagonal over [features (F) | positions (T_seq)] except for the random
cross blocks of the `blank` head. The functions here return the UNSCALED W (beta not multiplied in); `markov_head`
and `markov_layer` wrap them into `BilinearHeads(W, beta)`.

Networks (D.3). `markov_network("4paths")` and `markov_network("2paths")` build the two networks of Fig. 2 with
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
# the task's data, re-exported: `attnpaths._src.tasks.markov` is the task's one public module
from attnpaths._src.tasks.markov_data import (MarkovConfig, MarkovData, _check_config, _check_nonnegative,
                                              markov_dataset, state_vectors)
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
class MarkovNetwork:
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
"""name -> function() -> MarkovNetwork: the networks of experiment 1. Register a function to add one."""


def network_names() -> tuple[str, ...]:
    """Names accepted by `markov_network` (the registered Markov networks)."""
    return MARKOV_NETWORKS.names()


def _network(heads: tuple[int, ...]) -> NetworkSpec:
    return NetworkSpec(heads=heads, widths=10.0, variances=1.0, temperature=0.01, readout="last")


@MARKOV_NETWORKS.register("4paths")
def four_paths() -> MarkovNetwork:
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
    return MarkovNetwork(name="4paths", config=config, spec=_network((2, 2)), attention=[layer1, layer2],
                        path_names=("g", "a1", "d", "a2"), display_order=(0, 2, 1, 3),
                        gp_references={"good": good, "good+denoising": good_denoising})


@MARKOV_NETWORKS.register("2paths")
def two_paths() -> MarkovNetwork:
    """Fig. 2e: out-of-plane noise 5, in-plane 1; layer 1 = [same_token, blank with perturbation 0 (uniform
    attention)], layer 2 = [uniform]. Paths (g, d); GP reference 'g+d' = the network itself."""
    beta = 10.0
    config = MarkovConfig(noise_out_of_plane=5.0)
    layer1 = markov_layer([("same_token", 0.0, SEED_LAYER1_MAIN), ("blank", 0.0, SEED_LAYER1_BLANK)], config, beta)
    layer2 = markov_layer([("uniform", 0.0, SEED_LAYER2_MAIN)], config, beta)
    spec = _network((2, 1))
    attention = [layer1, layer2]
    return MarkovNetwork(name="2paths", config=config, spec=spec, attention=attention, path_names=("g", "d"),
                        display_order=(0, 1), gp_references={"g+d": (spec, list(attention), ("g", "d"))})


def markov_network(name: str) -> MarkovNetwork:
    """A registered network of experiment 1 (spec D.3): '4paths' (Fig. 2c,d) or '2paths' (Fig. 2e), or a user's.

    Raises ValueError naming the registered networks for an unknown name."""
    return MARKOV_NETWORKS[name]()


def markov_data(network: MarkovNetwork) -> tuple[MarkovData, MarkovData]:
    """(train, test) data of a network of experiment 1: n_train with train_seed and n_test with test_seed."""
    if not isinstance(network, MarkovNetwork):
        raise ValueError(f"network must be a MarkovNetwork (see markov_network); got {type(network).__name__}")
    return (markov_dataset(network.config, network.n_train, network.train_seed),
            markov_dataset(network.config, network.n_test, network.test_seed))
