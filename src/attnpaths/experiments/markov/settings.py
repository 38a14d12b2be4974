"""The settings of experiment 1 (spec D, Fig. 2), its presets, and the problem they build (network, data, path
features): what a run is made from and what a saved run is rebuilt from."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from attnpaths._src.paths import path_features
from attnpaths._src.tasks.markov import MARKOV_NETWORKS, WIDTHS, markov_data, markov_network
from attnpaths.experiments.progress import progress_setting
from attnpaths.experiments.sampling import SAMPLERS
from attnpaths.experiments.settings import Settings, at_least, each, packaged_presets, positive, setting

DEFAULT_SAMPLE_WIDTHS = (10.0, 100.0)


@dataclass(frozen=True)
class MarkovSettings(Settings):
    """Everything that determines a run of experiment 1 (spec D)."""

    network: str = setting("4paths", "the network: 4paths (Fig. 2c,d) or 2paths (Fig. 2e), or a registered one",
                           choices=MARKOV_NETWORKS)
    widths: tuple[float, ...] = setting(tuple(float(w) for w in WIDTHS), "widths N of the sweep (all layers "
                                        "equal)", check=each(positive))
    temperature: float = setting(0.01, "Bayesian temperature T (likelihood variance)", check=positive)
    n_train: int = setting(100, "P, training sequences (class-sorted)", check=at_least(2))
    n_test: int = setting(1000, "test sequences", check=at_least(1))
    train_seed: int = setting(27, "seed of the training data (spec D.1)", check=at_least(0))
    test_seed: int = setting(59, "seed of the test data", check=at_least(0))
    samples: bool = setting(False, "also sample the network's posterior at sample_widths (black dots of Fig. 2c)")
    sample_widths: tuple[float, ...] = setting(DEFAULT_SAMPLE_WIDTHS, "widths to sample (each must be in widths)",
                                               check=each(positive))
    n_samples: int = setting(400, "posterior draws per chain", check=at_least(4))
    n_chains: int = setting(4, "independent chains", check=at_least(1))
    n_warmup: int = setting(100, "sweeps discarded before the first draw", check=at_least(0))
    seed: int = setting(0, "seed of the chains", check=at_least(0))
    method: str = setting("gibbs", "sampler (gibbs: exact blocked Gibbs, resumable; nuts: NumPyro reference)",
                          choices=SAMPLERS)
    progress: bool = progress_setting()

    def __post_init__(self):
        super().__post_init__()
        if self.samples:
            missing = [w for w in self.sample_widths if w not in self.widths]
            if missing:
                raise ValueError(f"setting 'sample_widths': widths {missing} have no theory solution in this run "
                                 f"(its widths: {sorted(self.widths)}); add them to widths")


PRESETS = packaged_presets("preset of markov", "markov")


class MarkovProblem(NamedTuple):
    """The network with the settings applied, its (train, test) data and their path features."""

    network: object
    train: object
    test: object
    xi: np.ndarray
    xi_test: np.ndarray


def markov_problem(s: MarkovSettings) -> MarkovProblem:
    """One place for what a run builds and what a saved run is rebuilt from (samples)."""
    net = markov_network(s.network)
    net = dataclasses.replace(net, n_train=s.n_train, n_test=s.n_test, train_seed=s.train_seed,
                              test_seed=s.test_seed, spec=net.spec.replace(temperature=s.temperature))
    train, test = markov_data(net)
    xi = path_features(net.spec, net.attention, train.x)
    xit = path_features(net.spec, net.attention, test.x)
    return MarkovProblem(net, train, test, xi, xit)
