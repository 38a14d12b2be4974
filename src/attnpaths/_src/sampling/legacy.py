"""The sampling entry points before `sample`: thin aliases that warn (DeprecationWarning) and call the driver."""

from __future__ import annotations

import functools
import warnings

from attnpaths._src.paths import path_features
from attnpaths._src.sampling.api import sample_from_features
from attnpaths._src.sampling.draws import PosteriorDraws
from attnpaths._src.sampling.driver import run_sampler
from attnpaths._src.sampling.gibbs import BlockedGibbs


def _deprecated(instead: str):
    def wrap(f):
        @functools.wraps(f)
        def inner(*args, **kwargs):
            warnings.warn(f"attnpaths.{f.__name__} is deprecated; use {instead}", DeprecationWarning, stacklevel=2)
            return f(*args, **kwargs)

        return inner

    return wrap


@_deprecated("attnpaths.sample_from_features(..., method='gibbs') or attnpaths.run_sampler(gibbs, ...)")
def gibbs_draws(gibbs: BlockedGibbs, xi_test, n_draws: int, **kwargs) -> PosteriorDraws:
    """Deprecated: `run_sampler(gibbs, xi_test, n_draws, **kwargs)` (same keywords)."""
    return run_sampler(gibbs, xi_test, n_draws, **kwargs)


@_deprecated("attnpaths.sample(spec, heads, x, y, x_test, method='gibbs', ...)")
def run_gibbs(spec, attention_train, x_train, y_train, attention_test, x_test, n_draws: int,
              **kwargs) -> PosteriorDraws:
    """Deprecated: Gibbs draws from attention and inputs; `sample_blocks` and the driver's keywords."""
    options = {"sample_blocks": kwargs.pop("sample_blocks")} if "sample_blocks" in kwargs else None
    kwargs.setdefault("n_warmup", 0)
    xi, xi_test = path_features(spec, attention_train, x_train), path_features(spec, attention_test, x_test)
    return sample_from_features(spec, xi, y_train, xi_test, method="gibbs", n_draws=n_draws, options=options,
                                **kwargs)


@_deprecated("attnpaths.sample_from_features(..., method='nuts')")
def nuts_draws(spec, xi_train, y_train, xi_test, *, n_warmup: int = 100, n_draws: int = 100, n_chains: int = 1,
               seed: int = 1, progress: bool = True, **nuts_kwargs) -> PosteriorDraws:
    """Deprecated: NUTS draws from path features (defaults: the authors' 100 + 100, 1 chain, seed 1)."""
    return sample_from_features(spec, xi_train, y_train, xi_test, method="nuts", n_draws=n_draws,
                                n_chains=n_chains, n_warmup=n_warmup, seed=seed, options=nuts_kwargs,
                                progress=progress)


@_deprecated("attnpaths.sample(spec, heads, x, y, x_test, method='nuts', ...)")
def run_nuts(spec, attention_train, x_train, y_train, attention_test, x_test, *, n_warmup: int = 100,
             n_draws: int = 100, n_chains: int = 1, seed: int = 1, progress: bool = True,
             **nuts_kwargs) -> PosteriorDraws:
    """Deprecated: NUTS draws from attention and inputs (defaults as `nuts_draws`)."""
    xi, xi_test = path_features(spec, attention_train, x_train), path_features(spec, attention_test, x_test)
    return sample_from_features(spec, xi, y_train, xi_test, method="nuts", n_draws=n_draws, n_chains=n_chains,
                                n_warmup=n_warmup, seed=seed, options=nuts_kwargs, progress=progress)
