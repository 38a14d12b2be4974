"""Small random problems shared by the theory tests."""

from __future__ import annotations

import numpy as np
import pytest

import attnpaths as ap


def random_problem(heads, n_train=12, n_test=5, n0=5, n_tokens=4, scale=1.0, seed=0, readout="mean",
                   widths=5.0, temperature=0.1, variances=1.0):
    """A network with random bilinear heads and random inputs; labels from a random path readout."""
    rng = np.random.default_rng(seed)
    spec = ap.NetworkSpec(heads=tuple(heads), widths=widths, temperature=temperature, readout=readout,
                          variances=variances)
    attention = [ap.BilinearHeads(scale * rng.normal(size=(h, n0, n0)) / n0, beta=1.0) for h in heads]
    x = rng.normal(size=(n_train + n_test, n0, n_tokens))
    y = np.sign(rng.normal(size=n_train + n_test))
    return spec, attention, x[:n_train], y[:n_train], x[n_train:], y[n_train:]


@pytest.fixture
def problem():
    spec, attention, x, y, xt, yt = random_problem((2, 3), seed=1)
    xi = ap.path_features(spec, attention, x)
    xit = ap.path_features(spec, attention, xt)
    return spec, attention, x, y, xt, yt, xi, xit


@pytest.fixture
def registries_restored():
    """Every registry (head types, samplers, experiments, presets, ...) restored after the test: an executed docs
    or README example that registers its own entry must not change what a later test sees."""
    import gc

    from attnpaths._src.registry import Registry

    saved = [(r, dict(r._entries)) for r in gc.get_objects() if isinstance(r, Registry)]
    yield
    for registry, entries in saved:
        registry._entries.clear()
        registry._entries.update(entries)
