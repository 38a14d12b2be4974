"""One sampling interface: `sample` (from heads and inputs) and `sample_from_features` (from path features).

Both build the registered method by name (protocol.py: "gibbs", "nuts", or a user's own) and run it with the
shared driver (driver.py: chunks, atomic streamed storage, exact resume, progress bar, time box).
"""

from __future__ import annotations

from typing import Mapping

from attnpaths._src.network import Weights
from attnpaths._src.paths import path_features
from attnpaths._src.sampling.draws import PosteriorDraws
from attnpaths._src.sampling.driver import run_sampler
from attnpaths._src.sampling.blocked_gibbs import BlockedGibbs
from attnpaths._src.sampling.nuts import NUTSSampler
from attnpaths._src.sampling.protocol import make_sampler, register_sampler
from attnpaths._src.spec import NetworkSpec

register_sampler("gibbs", BlockedGibbs.from_features)
register_sampler("nuts", NUTSSampler)


def sample_from_features(spec: NetworkSpec, xi, y, xi_test, *, method: str = "gibbs", n_draws: int = 1000,
                         n_chains: int = 4, n_warmup: int = 100, thin: int = 1, seed: int = 0,
                         options: Mapping | None = None, init: Weights | None = None, path=None,
                         resume: bool = False, save_every: int | None = None, save_interval: float = 30.0,
                         time_budget: float | None = None, progress: bool = True) -> PosteriorDraws:
    """Posterior draws of f(x_test) and w_hat w_hat^T / N_1 from path features (spec C.2).

    Args:
      spec: the network (integer widths, T > 0).
      xi: (P, N0, H) path features of the training inputs (`path_features`).
      y: (P,) training targets.
      xi_test: (P_test, N0, H) path features of the test inputs.
      method: a registered sampler: "gibbs" (exact blocked Gibbs), "nuts" (NumPyro NUTS), or a name given to
        `register_sampler`.
      options: the method's own options, e.g. {"sample_blocks": ("a",)} for Gibbs or
        {"target_accept_prob": 0.9} for NUTS; unknown names raise ValueError.
      n_draws: draws recorded per chain.
      n_chains: independent chains, run together.
      n_warmup: sweeps (transitions) discarded before the first draw.
      thin: sweeps between recorded draws.
      seed: an int; the same seed gives the same draws, across processes and across a resume.
      init: starting weights (default: the prior).
      path: results file (.npz) the draws are streamed to, atomically; None keeps them in memory.
      resume: continue the run stored at `path`.
      save_every: write after this many new draws (default: by `save_interval`).
      save_interval: seconds between writes.
      time_budget: seconds after which the run stops cleanly, keeping its draws (`complete=False`).
      progress: show a progress bar.

    See `run_sampler` for the details of storage and resume.

    Returns:
      PosteriorDraws: f_test (C, S, P_test), U (C, S, H, H); `.to_arviz()` gives an ArviZ InferenceData.
    """
    sampler = make_sampler(method, spec, xi, y, options)
    return run_sampler(sampler, xi_test, n_draws, n_chains=n_chains, n_warmup=n_warmup, thin=thin, seed=seed,
                       init=init, path=path, resume=resume, save_every=save_every, save_interval=save_interval,
                       time_budget=time_budget, progress=progress)


def sample(spec: NetworkSpec, heads, x, y, x_test, *, heads_test=None, **kwargs) -> PosteriorDraws:
    """Posterior draws of the network's output on x_test and of its order parameter (spec C.2).

    Args:
      spec: the network (integer widths, T > 0).
      heads: one entry per layer, as `path_features` takes them (`BilinearHeads`, `QKHeads`, or attention
        arrays (P, H_l, T, T) of x).
      x: (P, N0, T) training inputs; y: (P,) training targets; x_test: (P_test, N0, T) test inputs.
      heads_test: the heads for x_test when `heads` are arrays of x's attention; default `heads`.
      **kwargs: method, options, n_draws, n_chains, n_warmup, thin, seed, init, path, resume, save_every,
        save_interval, time_budget, progress (see `sample_from_features`).

    Example::

        draws = attnpaths.sample(spec, heads, x, y, x_test, method="gibbs", n_draws=500, path="run.npz")
        summary = attnpaths.summarize(draws)          # mean, variance, U with standard errors, R-hat, ESS
    """
    xi = path_features(spec, heads, x)
    xi_test = path_features(spec, heads if heads_test is None else heads_test, x_test)
    return sample_from_features(spec, xi, y, xi_test, **kwargs)
