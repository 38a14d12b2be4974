"""The one sampling interface: registry of methods, shared driver (time box, storage), ArviZ."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import attnpaths  # noqa: F401  (float64)
from attnpaths import path_features
from attnpaths._src.sampling import (
    BlockedGibbs,
    load_draws,
    register_sampler,
    run_sampler,
    sample,
    sample_from_features,
    sampler_names,
)
from attnpaths._src.sampling import NUTSSampler, protocol
from test_sampling import _problem, assert_exact_readout_posterior, readout_features


class ExactReadout:
    """A user's third method, defined outside the package: exact independent draws of the readout `a` with
    V0 and V_l fixed at `weights` (Bayesian linear regression on the fixed features). A plain class, not a
    pytree: the driver treats it as a static constant."""

    def __init__(self, spec, xi, y, weights=None):
        self.spec, self.xi, self.y, self.fixed = spec, jnp.asarray(xi), jnp.asarray(y), weights
        self.F = readout_features(spec, weights, self.xi)
        s, T = spec.variances[-1], spec.temperature
        prec = self.F.T @ self.F / T + jnp.eye(self.F.shape[1]) / s
        self.chol = jnp.linalg.cholesky(prec)
        self.mean = jax.scipy.linalg.cho_solve((self.chol, True), self.F.T @ self.y / T)

    settings = property(lambda self: {"readout_only": True})

    def init(self, key, n_chains, n_warmup, weights=None):
        return {"a": jnp.zeros((n_chains,) + self.mean.shape), "key": jax.random.split(key, n_chains)}

    def step(self, state):
        split = jax.vmap(jax.random.split)(state["key"])
        z = jax.vmap(lambda k: jax.random.normal(k, self.mean.shape))(split[:, 1])
        a = self.mean + jax.scipy.linalg.solve_triangular(self.chol.T, z.T, lower=False).T
        return {"a": a, "key": split[:, 0]}

    def weights(self, state):
        C = state["a"].shape[0]
        w = jax.tree_util.tree_map(lambda v: jnp.broadcast_to(v, (C,) + v.shape), self.fixed)
        return w._replace(a=state["a"])


def test_a_third_method_is_one_registered_class(tmp_path):
    """Registered by name, it runs through `sample` with storage and resume, and samples the exact posterior
    (moments of f(x*) within 4.5 standard errors of the closed form)."""
    spec, x, att, y, w, x_test, att_test = _problem((2, 2), "last", P=8, widths=[4, 4, 5], temperature=0.1,
                                                   n_test=5)
    register_sampler("exact-readout", ExactReadout)
    try:
        assert "exact-readout" in sampler_names()
        kw = dict(method="exact-readout", options={"weights": w}, n_chains=2, n_warmup=0, seed=2, progress=False)
        full = sample(spec, att, x, y, x_test, heads_test=att_test, n_draws=1500, **kw)
        path = tmp_path / "mine.npz"
        sample(spec, att, x, y, x_test, heads_test=att_test, n_draws=500, path=path, **kw)
        resumed = sample(spec, att, x, y, x_test, heads_test=att_test, n_draws=1500, path=path, resume=True, **kw)
        np.testing.assert_array_equal(resumed.f_test, full.f_test)
    finally:
        protocol.SAMPLERS.unregister("exact-readout")
    xi, xit = path_features(spec, att, x), path_features(spec, att_test, x_test)
    assert_exact_readout_posterior(full, spec, w, xi, xit, y)


def test_a_taken_sampler_name_is_refused_unless_replace():
    """The `Registry.register` rule, as for head types and presets: the same factory again changes nothing,
    another one needs replace=True."""
    register_sampler("test-taken", ExactReadout)
    try:
        register_sampler("test-taken", ExactReadout)
        with pytest.raises(ValueError, match="sampler 'test-taken' is already registered; pass replace=True"):
            register_sampler("test-taken", NUTSSampler)
        assert protocol.SAMPLERS["test-taken"] is ExactReadout
        register_sampler("test-taken", NUTSSampler, replace=True)
        assert protocol.SAMPLERS["test-taken"] is NUTSSampler
    finally:
        protocol.SAMPLERS.unregister("test-taken")


def test_unknown_method_and_options_are_named():
    spec, x, att, y, w, x_test, att_test = _problem((2, 2), "last")
    xi = path_features(spec, att, x)
    with pytest.raises(ValueError, match=r"method: unknown sampler 'hmc'; known: gibbs, nuts.* \(add your own with "
                                         r"attnpaths.register_sampler\)"):
        sample_from_features(spec, xi, y, xi, method="hmc")
    with pytest.raises(ValueError, match=r"unknown sampler 'gibs' \(did you mean 'gibbs'\?\)"):
        sample_from_features(spec, xi, y, xi, method="gibs")
    with pytest.raises(ValueError, match=r"options \['blocks'\] are not options of method 'gibbs'; it takes "
                                         r"\['sample_blocks', 'reduce'\]"):
        sample_from_features(spec, xi, y, xi, options={"blocks": ("a",)})
    with pytest.raises(ValueError, match=r"options \['step'\] are not options of numpyro.infer.NUTS"):
        sample_from_features(spec, xi, y, xi, method="nuts", options={"step": 0.1})
    with pytest.raises(ValueError, match="time_budget must be > 0"):
        sample_from_features(spec, xi, y, xi, time_budget=0)
    with pytest.raises(ValueError, match="sampler name must be a non-empty string"):
        register_sampler("", ExactReadout)


def test_time_budget_stops_cleanly_and_resumes(tmp_path):
    """A budget smaller than the first chunk: one chunk runs, is saved, and the call returns incomplete; the
    resumed run completes to the uninterrupted numbers."""
    spec, x, att, y, w, x_test, att_test = _problem((2, 2), "last")
    g = BlockedGibbs(spec, att, x, y)
    xit = path_features(spec, att_test, x_test)
    kw = dict(n_chains=2, n_warmup=3, thin=2, seed=3, progress=False)
    full = run_sampler(g, xit, 40, **kw)
    path = tmp_path / "boxed.npz"
    part = run_sampler(g, xit, 40, path=path, time_budget=1e-6, save_interval=1e9, **kw)
    assert not part.complete and part.n_draws < 40
    assert load_draws(path).n_draws == part.n_draws
    np.testing.assert_array_equal(part.f_test, full.f_test[:, :part.n_draws])
    rest = run_sampler(g, xit, 40, path=path, resume=True, **kw)
    assert rest.complete
    np.testing.assert_array_equal(rest.f_test, full.f_test)
    np.testing.assert_array_equal(rest.U, full.U)


def test_to_arviz_has_chain_and_draw_dims():
    rng = np.random.default_rng(0)
    f, U = rng.normal(size=(3, 50, 4)), rng.normal(size=(3, 50, 2, 2))
    idata = attnpaths._src.sampling.PosteriorDraws(f, U, 2, 1.0).to_arviz()
    post = idata.posterior
    assert dict(post["f_test"].sizes) == {"chain": 3, "draw": 50, "test_example": 4}
    assert dict(post["U_1"].sizes) == {"chain": 3, "draw": 50, "path_i": 2, "path_j": 2}
    np.testing.assert_array_equal(post["f_test"].values, f)
    np.testing.assert_array_equal(post["U_1"].values[1, 7], U[1, 7])


def test_nuts_resumes_bit_for_bit(tmp_path):
    """NUTS gets the same driver: its whole state (adaptation included) is stored; warm-up cut mid-way."""
    spec, x, att, y, w, x_test, att_test = _problem((2,), "mean", P=5, n0=3, widths=[2, 2], n_test=2)
    xi, xit = path_features(spec, att, x), path_features(spec, att_test, x_test)
    nuts = NUTSSampler(spec, xi, y)  # one sampler: its runs share one compilation
    kw = dict(n_chains=2, n_warmup=20, seed=1, progress=False)
    full = run_sampler(nuts, xit, 15, **kw)
    path = tmp_path / "nuts.npz"
    cut = run_sampler(nuts, xit, 15, path=path, time_budget=1e-6, save_interval=0, **kw)
    assert cut.n_draws == 0 and not cut.complete  # stopped inside the warm-up
    rest = run_sampler(nuts, xit, 15, path=path, resume=True, **kw)
    np.testing.assert_array_equal(rest.f_test, full.f_test)
    assert np.all(np.isfinite(full.f_test)) and full.f_test.shape == (2, 15, 2)
