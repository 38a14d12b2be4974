"""Reference sampler: NumPyro NUTS on the same weight posterior (spec C.2, as the authors' `bayesian_model`).

A plain NumPyro model: every weight block has its Gaussian prior (spec A.7), the attention is precomputed and
enters as constants (through the path features xi, spec B.1; `network.path_forward` equals the token-level
`network.forward`), and y ~ Normal(f, sqrt(T)). Run with default NUTS settings; chain_method='vectorized' so that
several chains run on one device.
"""

from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import MCMC, NUTS

from attnpaths._src.checks import as_labels
from attnpaths._src.network import Weights, overlap, path_forward, weight_shapes
from attnpaths._src.paths import path_features
from attnpaths._src.sampling.gibbs import PosteriorDraws, _check_count, _check_temperature
from attnpaths._src.spec import NetworkSpec


def network_model(spec: NetworkSpec, xi: jnp.ndarray, y: jnp.ndarray | None = None) -> None:
    """NumPyro model of the Bayesian network: sites 'V0', 'V1', ..., 'VL', 'a' and the observed 'y'.

    xi: (P, N0, H) path features of the training inputs (the precomputed attention); y: (P,) or None.
    """
    shapes = weight_shapes(spec, xi.shape[1])
    var = spec.variances

    def block(name, shape, s):
        return numpyro.sample(name, dist.Normal(0.0, math.sqrt(s)).expand(shape).to_event(len(shape)))

    V0 = block("V0", shapes.V0, var[0])
    V = tuple(block(f"V{l + 1}", shapes.V[l], var[l + 1]) for l in range(spec.n_layers))
    a = block("a", shapes.a, var[-1])
    f = path_forward(spec, Weights(V0, V, a), xi)
    numpyro.sample("y", dist.Normal(f, math.sqrt(spec.temperature)), obs=y)


def _weights_from_samples(spec: NetworkSpec, samples: dict) -> Weights:
    return Weights(samples["V0"], tuple(samples[f"V{l + 1}"] for l in range(spec.n_layers)), samples["a"])


def nuts_draws(spec: NetworkSpec, xi_train, y_train, xi_test, *, n_warmup: int = 100, n_draws: int = 100,
               n_chains: int = 1, seed: int = 1, progress: bool = True, **nuts_kwargs) -> PosteriorDraws:
    """NUTS draws of f(x_test) and w_hat w_hat^T / N_1 from path features (see `run_nuts`).

    nuts_kwargs go to `numpyro.infer.NUTS` (default settings otherwise: target_accept_prob 0.8).
    """
    _check_temperature(spec)
    n_warmup = _check_count("n_warmup", n_warmup, 0)
    n_draws = _check_count("n_draws", n_draws)
    n_chains = _check_count("n_chains", n_chains)
    seed = _check_count("seed", seed, 0)
    xi_train = jnp.asarray(np.asarray(xi_train, dtype=np.float64))
    xi_test = jnp.asarray(np.asarray(xi_test, dtype=np.float64))
    y_train = jnp.asarray(as_labels("y_train", y_train, xi_train.shape[0]))
    mcmc = MCMC(NUTS(network_model, **nuts_kwargs), num_warmup=n_warmup, num_samples=n_draws,
                num_chains=n_chains, chain_method="vectorized", progress_bar=progress)
    start = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(seed), spec, xi_train, y_train)
    samples = mcmc.get_samples(group_by_chain=True)
    jax.block_until_ready(samples)
    seconds = time.perf_counter() - start
    weights = _weights_from_samples(spec, samples)

    @jax.jit
    def record(w):
        return jax.vmap(jax.vmap(lambda v: (path_forward(spec, v, xi_test), overlap(spec, v))))(w)

    f_test, U = record(weights)
    return PosteriorDraws(np.asarray(f_test), np.asarray(U), 1, seconds)


def run_nuts(spec: NetworkSpec, attention_train, x_train, y_train, attention_test, x_test, *,
             n_warmup: int = 100, n_draws: int = 100, n_chains: int = 1, seed: int = 1, progress: bool = True,
             **nuts_kwargs) -> PosteriorDraws:
    """NumPyro NUTS posterior draws of f(x_test) and w_hat w_hat^T / N_1, the same result type as `run_gibbs`.

    Defaults are the authors' experiment-1 settings (spec C.2): 100 warm-up, 100 draws, 1 chain, seed 1.
    seconds in the result includes NumPyro's compilation.
    """
    xi_train = path_features(spec, attention_train, x_train)
    xi_test = path_features(spec, attention_test, x_test)
    return nuts_draws(spec, xi_train, y_train, xi_test, n_warmup=n_warmup, n_draws=n_draws, n_chains=n_chains,
                      seed=seed, progress=progress, **nuts_kwargs)
