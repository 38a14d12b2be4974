"""Posterior samplers (spec C.2): exact block conditionals, exact posteriors, Gibbs vs NUTS, results files."""

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.util import log_density

import attnpaths  # noqa: F401  (float64)
from attnpaths import NetworkSpec, path_features
from attnpaths._src.network import Weights, forward, log_likelihood, log_prior, weight_shapes
from attnpaths._src.sampling import (
    BlockedGibbs,
    PosteriorDraws,
    linear_blocks,
    network_model,
    run_sampler,
    sample_from_features,
    summarize,
)
from attnpaths._src.sampling import NUTSSampler
from attnpaths._src.sampling import driver as driver_module
from attnpaths._src.sampling import store as store_module
from attnpaths._src.sampling.nuts import _flat_model
from attnpaths._src.sampling.gibbs import (
    _sweep,
    block_gram,
    block_matvec,
    block_rmatvec,
    matheron_update,
    reduced_update,
)

ARCHS = [((1,), "mean"), ((3,), "last"), ((2, 3), "first"), ((2, 2), "last"), ((2, 1, 2), "mean")]


def _problem(heads, readout="last", P=6, n0=4, n_tokens=3, widths=None, temperature=0.3, seed=0, n_test=4):
    rng = np.random.default_rng(seed)
    L = len(heads)
    widths = widths if widths is not None else [3 + l for l in range(L)] + [2]
    spec = NetworkSpec(heads, widths=widths, variances=[1.0, 0.5, 2.0, 1.5, 0.7][: L + 2],
                       temperature=temperature, readout=readout)

    def inputs(n):
        x = rng.normal(size=(n, n0, n_tokens))
        att = []
        for h in heads:
            e = np.exp(2 * rng.normal(size=(n, h, n_tokens, n_tokens)))
            att.append(e / e.sum(axis=-2, keepdims=True))  # softmax over keys
        return x, att

    x, att = inputs(P)
    x_test, att_test = inputs(n_test)
    y = rng.choice([-1.0, 1.0], size=P)
    shapes = weight_shapes(spec, n0)
    draw = [math.sqrt(v) * rng.normal(size=sh) for v, sh in zip(spec.variances, [shapes.V0, *shapes.V, shapes.a])]
    w = Weights(jnp.asarray(draw[0]), tuple(jnp.asarray(d) for d in draw[1:-1]), jnp.asarray(draw[-1]))
    return spec, x, att, y, w, x_test, att_test


def _blocks(w):
    return [w.V0[None], *w.V, w.a[None, None]]


def _with_block(w, k, W):
    blocks = _blocks(w)
    blocks[k] = W
    return Weights(blocks[0][0], tuple(blocks[1:-1]), blocks[-1][0, 0])


_jacobian = jax.jit(jax.jacobian(forward, argnums=1), static_argnums=0)


def _explicit_phis(spec, w, x, att):
    """Phi (P, D_k) of every block by brute force: the Jacobian of the token-level forward pass."""
    J = _jacobian(spec, w, jnp.asarray(x), [jnp.asarray(a) for a in att])
    return [np.asarray(j).reshape(x.shape[0], -1) for j in _blocks(J._replace(V0=J.V0[:, None],
                                                                              a=J.a[:, None, None]))]


def _explicit_phi(spec, w, x, att, k):
    return _explicit_phis(spec, w, x, att)[k]


@pytest.mark.parametrize("heads, readout", ARCHS)
def test_blocks_match_brute_force(heads, readout):
    """Every block's structured Phi w, Phi^T beta, Phi Phi^T equal the explicit Phi (jax.jacobian of the token
    forward pass), and its Matheron draw has exactly the textbook conditional mean and covariance."""
    spec, x, att, y, w, *_ = _problem(heads, readout, temperature=0.2)
    xi = path_features(spec, att, x)
    T, P = spec.temperature, x.shape[0]
    rng = np.random.default_rng(1)
    Ws = [rng.normal(size=b.shape) for b in _blocks(w)]
    beta = rng.normal(size=P)

    @jax.jit
    def structured(w, xi, Ws, beta, y):
        out = []
        for k, (b, W) in enumerate(zip(linear_blocks(spec, w, xi), Ws)):
            s = spec.variances[k]

            def draw(w0, eps):
                return matheron_update(b, w0, eps, y, s, T).ravel()

            zero, zeps = jnp.zeros(W.shape), jnp.zeros(P)
            J0 = jax.jacobian(draw, 0)(zero, zeps)
            J0 = J0.reshape(J0.shape[0], -1)
            Je = jax.jacobian(draw, 1)(zero, zeps)
            cov = s * J0 @ J0.T + T * Je @ Je.T  # the draw is linear in (w0, eps)
            out.append((block_matvec(b, W), block_rmatvec(b, beta), block_gram(b), draw(zero, zeps), cov))
        return out

    phis = _explicit_phis(spec, w, x, att)
    for k, (Phi, W, (mv, rmv, gram, mean, cov)) in enumerate(zip(phis, Ws, structured(w, xi, Ws, beta, y))):
        np.testing.assert_allclose(mv, Phi @ W.ravel(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(np.ravel(rmv), Phi.T @ beta, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(gram, Phi @ Phi.T, rtol=1e-10, atol=1e-12)
        ref_cov = np.linalg.inv(Phi.T @ Phi / T + np.eye(Phi.shape[1]) / spec.variances[k])
        np.testing.assert_allclose(mean, ref_cov @ Phi.T @ y / T, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(cov, ref_cov, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("heads, readout", ARCHS)
def test_reduced_update_equals_matheron_update(heads, readout):
    """The r x r route (`reduced_update`) gives the same draw as the P x P route for the same noise, for every
    block, whether r is below or above P."""
    spec, x, att, y, w, *_ = _problem(heads, readout, temperature=0.2)
    xi = path_features(spec, att, x)
    rng = np.random.default_rng(2)
    for k, b in enumerate(linear_blocks(spec, w, xi)):
        W0 = jnp.asarray(rng.normal(size=_blocks(w)[k].shape))
        eps = jnp.asarray(0.3 * rng.normal(size=x.shape[0]))
        s = spec.variances[k]
        got = reduced_update(b, W0, eps, jnp.asarray(y), s, spec.temperature)
        want = matheron_update(b, W0, eps, jnp.asarray(y), s, spec.temperature)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-11)
        assert not np.allclose(got, W0)  # the data moved it


@pytest.mark.parametrize("use_path_gram", [False, True])
def test_sweep_redraws_blocks_bottom_up_from_their_conditionals(use_path_gram):
    """A sweep = V0, V1, ..., a, each drawn from its conditional given the blocks updated before it (with the
    V0 Gram built from the factors or from the precomputed path Gram)."""
    from attnpaths._src.sampling.gibbs import path_gram

    spec, x, att, y, w, *_ = _problem((2, 3), "last")
    xi = path_features(spec, att, x)
    key = jax.random.PRNGKey(5)
    C0 = path_gram(xi) if use_path_gram else None
    assert not use_path_gram or C0 is not None
    swept = jax.jit(lambda k, w: _sweep(spec, (True,) * 4, xi, jnp.asarray(y), k, w, True, C0, True))(key, w)
    P = x.shape[0]
    sizes = [b.size for b in _blocks(w)]
    noise = np.asarray(jax.random.normal(key, (sum(sizes) + 4 * P,)))  # the sweep's noise, cut in block order
    cur = w
    start = 0
    for k in range(4):
        shape = _blocks(cur)[k].shape
        w0 = math.sqrt(spec.variances[k]) * noise[start:start + sizes[k]]
        eps = math.sqrt(spec.temperature) * noise[start + sizes[k]:start + sizes[k] + P]
        start += sizes[k] + P
        Phi = _explicit_phi(spec, cur, x, att, k)
        s, T = spec.variances[k], spec.temperature
        K = s * Phi @ Phi.T + T * np.eye(x.shape[0])
        new = np.asarray(w0).ravel() + s * Phi.T @ np.linalg.solve(K, y - Phi @ np.asarray(w0).ravel() - eps)
        cur = _with_block(cur, k, jnp.asarray(new.reshape(shape)))
        np.testing.assert_allclose(_blocks(swept)[k], _blocks(cur)[k], rtol=1e-8, atol=1e-10)


def readout_features(spec, weights, xi):
    """F (P, N_a) with f = F a when everything but the readout is fixed at `weights`."""
    block = linear_blocks(spec, weights, jnp.asarray(xi))[-1]
    return block.c * block.Z[:, 0, 0, :]


def assert_exact_readout_posterior(draws, spec, weights, xi, xi_test, y):
    """f(x*) of readout-only draws against the closed-form Gaussian: mean and variance within 4.5 standard
    errors (Bayesian linear regression on the fixed features)."""
    F, Fs = (np.asarray(readout_features(spec, weights, v)) for v in (xi, xi_test))
    s, T = spec.variances[-1], spec.temperature
    K = s * F @ F.T + T * np.eye(len(y))
    mean = s * Fs @ F.T @ np.linalg.solve(K, y)
    var = np.diag(s * Fs @ Fs.T - s ** 2 * Fs @ F.T @ np.linalg.solve(K, F @ Fs.T))
    summ = summarize(draws)
    assert np.all(np.abs(summ.mean - mean) < 4.5 * summ.mean_se)
    assert np.all(np.abs(summ.var - var) < 4.5 * summ.var_se)
    return summ


def test_readout_only_posterior_is_bayesian_linear_regression():
    """V0, V_l fixed, a sampled: f(x*) is Gaussian with the closed-form GP mean and variance."""
    spec, x, att, y, w, x_test, att_test = _problem((2, 2), "last", P=8, widths=[4, 4, 5], temperature=0.1,
                                                   n_test=5)
    gibbs = BlockedGibbs(spec, att, x, y, sample_blocks=("a",))
    xi_test = path_features(spec, att_test, x_test)
    draws = run_sampler(gibbs, xi_test, 1500, n_chains=4, init=w, seed=3, progress=False)
    summ = assert_exact_readout_posterior(draws, spec, w, gibbs.xi, xi_test, y)
    assert np.all(summ.rhat_mean < 1.01)
    assert np.all(summ.ess_mean > 0.5 * 4 * 1500)  # exact independent draws


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_gibbs_agrees_with_nuts_on_a_tiny_network():
    spec, x, att, y, w, x_test, att_test = _problem((2,), "mean", P=6, n0=3, widths=[3, 3], temperature=0.5,
                                                   n_test=3)
    spec = spec.replace(variances=1.0)
    xi, xi_test = path_features(spec, att, x), path_features(spec, att_test, x_test)
    g = summarize(run_sampler(BlockedGibbs.from_features(spec, xi, y), xi_test, 2000, n_chains=4, n_warmup=100,
                              seed=0, progress=False))
    n = summarize(sample_from_features(spec, xi, y, xi_test, method="nuts", n_warmup=200, n_draws=600,
                                       n_chains=2, seed=1, progress=False))
    for a, b, sa, sb in [(g.mean, n.mean, g.mean_se, n.mean_se), (g.var, n.var, g.var_se, n.var_se),
                         (g.U, n.U, g.U_se, n.U_se)]:
        assert np.all(np.abs(a - b) < 5 * np.sqrt(sa ** 2 + sb ** 2) + 1e-12), (a, b, sa, sb)


def test_nuts_model_density_is_prior_plus_likelihood():
    spec, x, att, y, w, *_ = _problem((2, 3), "first")
    xi = path_features(spec, att, x)
    params = {"V0": w.V0, "V1": w.V[0], "V2": w.V[1], "a": w.a}
    ld, _ = log_density(network_model, (spec, xi, jnp.asarray(y)), {}, params)
    ref = log_prior(spec, w) + log_likelihood(spec, w, jnp.asarray(x), att, jnp.asarray(y))
    np.testing.assert_allclose(float(ld), float(ref), rtol=1e-12)
    flat = NUTSSampler(spec, xi, y)  # the model NUTS runs: features laid out (P, H N0)
    ld, _ = log_density(_flat_model, (spec, xi.shape[1], flat.xi_flat, flat.y), {}, params)
    np.testing.assert_allclose(float(ld), float(ref), rtol=1e-12)


def _small_gibbs(seed=0, **kwargs):
    spec, x, att, y, w, x_test, att_test = _problem((2, 2), "last", seed=seed, **kwargs)
    return BlockedGibbs(spec, att, x, y), path_features(spec, att_test, x_test)


def test_same_seed_same_numbers():
    gibbs, xi_test = _small_gibbs()
    a = run_sampler(gibbs, xi_test, 5, n_chains=2, n_warmup=3, thin=2, seed=4, progress=False)
    b = run_sampler(gibbs, xi_test, 5, n_chains=2, n_warmup=3, thin=2, seed=4, progress=False)
    c = run_sampler(gibbs, xi_test, 5, n_chains=2, n_warmup=3, thin=2, seed=5, progress=False)
    assert np.array_equal(a.f_test, b.f_test) and np.array_equal(a.U, b.U)
    assert not np.allclose(a.f_test, c.f_test)
    assert a.f_test.shape == (2, 5, 4) and a.U.shape == (2, 5, 4, 4)
    assert not np.allclose(a.f_test[0], a.f_test[1])  # chains differ
    # advance composes bit for bit (one compiled loop, n traced); step is the same sweep, un-jitted
    s0 = gibbs.init(jax.random.PRNGKey(1), 2)
    s1 = gibbs.advance(gibbs.advance(gibbs.advance(s0, 1), 1), 1)
    s2 = gibbs.advance(s0, 3)
    assert int(s1.sweeps) == int(s2.sweeps) == 3
    np.testing.assert_array_equal(s1.weights.V0, s2.weights.V0)
    s3 = gibbs.step(gibbs.step(gibbs.step(s0)))
    np.testing.assert_allclose(s3.weights.V0, s2.weights.V0, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("heads, widths, n0", [((2, 2), [8, 9, 10], 3), ((2, 1, 2), [3, 8, 4, 10], 2)])
def test_path_moment_route_equals_matheron_update(heads, widths, n0):
    """The path-moment route (factored.py) gives the same draw as the P x P route for the same noise, for every
    block, with the input map M factored (R N0 < N_k) and direct (R N0 >= N_k); its M reproduces every Z."""
    from attnpaths._src.sampling import factored as fa

    spec, x, att, y, w, *_ = _problem(heads, "last", P=20, n0=n0, widths=widths, temperature=0.2)
    xi = path_features(spec, att, x)
    moments, rng, M = fa.path_moments(xi), np.random.default_rng(2), None
    kinds = set()
    for k, b in enumerate(linear_blocks(spec, w, xi)):
        dims = fa.block_dims(spec, k)
        X = fa.block_features(xi, dims)
        np.testing.assert_allclose(X if M is None else jnp.einsum("ia,phsa->phsi", M, X), b.Z, rtol=1e-12,
                                   atol=1e-12)
        W = _blocks(w)[k]
        W0 = jnp.asarray(rng.normal(size=W.shape))
        eps = jnp.asarray(0.3 * rng.normal(size=x.shape[0]))
        s, T = spec.variances[k], spec.temperature
        want = matheron_update(b, W0, eps, jnp.asarray(y), s, T)
        for full_rank in (False, True):  # R_M by Householder QR, or by a Cholesky of M^T M
            got = fa.factored_update(b.u, M, X, fa.block_moments(moments, dims), b.c, W0, eps, jnp.asarray(y), s,
                                     T, full_rank)
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-11)
            assert not np.allclose(got, W0)
        kinds.add("V0" if M is None else "factored" if M.shape[1] < W.shape[2] else "direct")
        if k <= spec.n_layers:  # the next block's input map, as factored_sweep carries it
            WM = W if M is None else jnp.einsum("hoi,ia->hoa", W, M)
            H_b, _, R = dims
            M = b.c * jnp.transpose(WM.reshape(H_b, W.shape[1], R, n0), (1, 2, 0, 3)).reshape(W.shape[1], -1)
    assert kinds == {"V0", "factored", "direct"}


def test_path_moment_route_with_a_zero_block_below():
    """V0 held fixed at zero (sample_blocks): the upper blocks' input maps are rank-deficient, the data see nothing,
    and every draw is finite (the Householder QR, not a Cholesky of M^T M, on that route)."""
    spec, x, att, y, w, x_test, att_test = _problem((2, 2), "last", P=30, n0=3, widths=[8, 9, 10])
    g = BlockedGibbs(spec, att, x, y, sample_blocks=("V1", "V2", "a"))
    assert g.route == ("q",) * 4
    d = run_sampler(g, path_features(spec, att_test, x_test), 3, n_chains=2, init=w._replace(V0=0 * w.V0), seed=0,
                    progress=False)
    np.testing.assert_array_equal(d.f_test, 0.0)


def test_path_moment_sweep_gives_the_same_chain_as_p_by_p():
    """A network where the sampler takes the path-moment route for every block: the same chain as P x P
    everywhere (reduce=False) and as the sweep before it (`_legacy`), up to rounding."""
    from attnpaths._src.sampling.blocked_gibbs import _legacy

    spec, x, att, y, w, x_test, att_test = _problem((2, 2), "last", P=30, n0=3, widths=[8, 9, 10])
    xi_test = path_features(spec, att_test, x_test)
    fast = BlockedGibbs(spec, att, x, y)
    assert fast.route == ("q",) * 4
    kw = dict(n_chains=2, n_warmup=3, seed=2, progress=False)
    runs = [run_sampler(g, xi_test, 6, **kw) for g in (fast, BlockedGibbs(spec, att, x, y, reduce=False),
                                                       _legacy(fast))]
    for other in runs[1:]:
        np.testing.assert_allclose(runs[0].f_test, other.f_test, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(runs[0].U, other.U, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("route", [("P", "P", "q", "q"), ("q", "q", "P", "P")])
def test_every_mix_of_routes_gives_the_same_chain(route):
    """factored_sweep with the routes forced to a mix (the cost model picks all 'q' here): the same chain as P x P
    everywhere, so each block on the P route gets its own Gram (V0's cached C0 and no other) and its input M."""
    from attnpaths._src.sampling.factored import path_moments

    spec, x, att, y, w, x_test, att_test = _problem((2, 2), "last", P=30, n0=3, widths=[8, 9, 10])
    xi_test = path_features(spec, att_test, x_test)
    fast = BlockedGibbs(spec, att, x, y)
    _, aux = fast.tree_flatten()
    mixed = BlockedGibbs.tree_unflatten(aux[:-1] + (route,), (fast.xi, fast.y, fast.C0, path_moments(fast.xi)))
    kw = dict(n_chains=2, n_warmup=3, seed=2, progress=False)
    got = run_sampler(mixed, xi_test, 4, **kw)
    want = run_sampler(BlockedGibbs(spec, att, x, y, reduce=False), xi_test, 4, **kw)
    np.testing.assert_allclose(got.f_test, want.f_test, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(got.U, want.U, rtol=1e-8, atol=1e-10)


def test_reduced_route_gives_the_same_chain():
    """Gibbs with r x r algebra where r < P (here V2 and a) and with P x P everywhere: the same draws."""
    spec, x, att, y, w, x_test, att_test = _problem((2, 2), "last", P=12)
    xi_test = path_features(spec, att_test, x_test)
    kw = dict(n_chains=2, n_warmup=5, seed=2, progress=False)
    fast = run_sampler(BlockedGibbs(spec, att, x, y), xi_test, 10, **kw)
    slow = run_sampler(BlockedGibbs(spec, att, x, y, reduce=False), xi_test, 10, **kw)
    np.testing.assert_allclose(fast.f_test, slow.f_test, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(fast.U, slow.U, rtol=1e-7, atol=1e-9)


def test_resume_equals_uninterrupted(tmp_path):
    gibbs, xi_test = _small_gibbs()
    kw = dict(n_chains=2, n_warmup=4, thin=3, seed=7, progress=False)
    full = run_sampler(gibbs, xi_test, 8, path=tmp_path / "full.npz", **kw)
    part = tmp_path / "part.npz"
    first = run_sampler(gibbs, xi_test, 3, path=part, **kw)
    np.testing.assert_array_equal(first.f_test, full.f_test[:, :3])
    resumed = run_sampler(gibbs, xi_test, 8, path=part, resume=True, **kw)
    np.testing.assert_array_equal(resumed.f_test, full.f_test)
    np.testing.assert_array_equal(resumed.U, full.U)
    # summaries too, to the last bit: returned and stored draws have one memory layout
    assert np.array_equal(summarize(full).U, summarize(store_module.load_draws(part)).U)
    # resuming a finished run returns its draws without sampling
    again = run_sampler(gibbs, xi_test, 8, path=part, resume=True, **kw)
    np.testing.assert_array_equal(again.f_test, full.f_test)


def test_interrupted_run_keeps_finished_draws_and_resumes(tmp_path, monkeypatch):
    gibbs, xi_test = _small_gibbs()
    kw = dict(n_chains=2, n_warmup=0, thin=2, seed=1, progress=False)  # first chunk: 1 draw (no timing yet)
    full = run_sampler(gibbs, xi_test, 6, **kw)
    chunk = driver_module._chunk_pytree
    calls = []

    def interrupting(sampler, state, xi_test, thin, n):  # stop before the second chunk of draws
        if int(thin) == 2 and int(n) > 0:
            if calls:
                raise KeyboardInterrupt
            calls.append(1)
        return chunk(sampler, state, xi_test, thin, n)

    path = tmp_path / "run.npz"
    monkeypatch.setattr(driver_module, "_chunk_pytree", interrupting)
    with pytest.raises(KeyboardInterrupt):
        run_sampler(gibbs, xi_test, 6, path=path, save_interval=1e9, **kw)
    monkeypatch.undo()
    stored = store_module.load_draws(path)
    assert 1 <= stored.n_draws < 6 and not stored.complete
    np.testing.assert_array_equal(stored.f_test, full.f_test[:, :stored.n_draws])
    resumed = run_sampler(gibbs, xi_test, 6, path=path, resume=True, **kw)
    np.testing.assert_array_equal(resumed.f_test, full.f_test)
    assert resumed.complete


def test_results_file_is_protected(tmp_path):
    gibbs, xi_test = _small_gibbs()
    kw = dict(n_chains=1, thin=1, progress=False)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, data=np.arange(3))
    text = tmp_path / "notes.npz"
    text.write_text("my notes")
    corrupt = tmp_path / "corrupt.npz"
    run_sampler(gibbs, xi_test, 2, path=corrupt, seed=0, **kw)
    corrupt.write_bytes(corrupt.read_bytes()[:200])
    mine = tmp_path / "mine.npz"
    run_sampler(gibbs, xi_test, 2, path=mine, seed=0, **kw)
    cases = [
        (foreign, dict(seed=0), "foreign.npz is not an attnpaths record"),
        (text, dict(seed=0), "notes.npz is corrupt or truncated"),
        (corrupt, dict(seed=0, resume=True), "corrupt.npz is corrupt or truncated"),
        (mine, dict(seed=1, resume=True), "holds another run .*seed"),
        (mine, dict(seed=0), "pass resume=True"),
    ]
    for path, extra, match in cases:
        before = path.read_bytes()
        with pytest.raises(ValueError, match=match):
            run_sampler(gibbs, xi_test, 3, path=path, **kw, **extra)
        assert path.read_bytes() == before
    other, other_test = _small_gibbs(seed=1)
    with pytest.raises(ValueError, match="holds another run .*data"):
        run_sampler(other, other_test, 3, path=mine, seed=0, resume=True, **kw)
    assert not _temporaries(tmp_path)


def _temporaries(folder):
    """Files the atomic writer leaves when killed mid-write: `.{name}.XXXX.tmp` (see atomic.write_atomic)."""
    return sorted(f for f in os.listdir(folder) if f.startswith(".") and f.endswith(".tmp"))


def test_temporaries_pattern_matches_the_writer(tmp_path, monkeypatch):
    """The leftover check above must see what a writer killed between write and rename leaves behind."""
    from attnpaths._src import atomic

    def killed(src, dst):
        raise SystemExit  # a kill after the data is on disk, before the rename: write_atomic's cleanup runs...

    monkeypatch.setattr(atomic.os, "unlink", lambda p: None)  # ...so disable it, as a SIGKILL would
    monkeypatch.setattr(atomic.os, "replace", killed)
    with pytest.raises(SystemExit):
        atomic.write_atomic(tmp_path / "r.npz", lambda f: f.write(b"x"))
    monkeypatch.undo()
    assert len(_temporaries(tmp_path)) == 1
    store_module.DrawStore.open(tmp_path / "r.npz", {"a": 1}, resume=False)  # opening a run clears them
    assert not _temporaries(tmp_path)


def test_bad_inputs():
    spec, x, att, y, w, x_test, att_test = _problem((2, 2), "last")
    with pytest.raises(ValueError, match="sampling needs T > 0"):
        BlockedGibbs(spec.replace(temperature=0.0), att, x, y)
    with pytest.raises(ValueError, match=r"integer widths"):
        BlockedGibbs(spec.replace(widths=[3, 4.5, 2]), att, x, y)
    with pytest.raises(ValueError, match=r"y has 5 entries but there are 6 examples"):
        BlockedGibbs(spec, att, x, y[:5])
    with pytest.raises(ValueError, match=r"sample_blocks must be a non-empty subset"):
        BlockedGibbs(spec, att, x, y, sample_blocks=("V7",))
    gibbs = BlockedGibbs(spec, att, x, y)
    bad = w._replace(V=(w.V[0][:, :2], w.V[1]))
    with pytest.raises(ValueError, match=r"weight block V1 must have shape \(H_1, N_2, N_1\) = \(2, 4, 3\); "
                                         r"got \(2, 2, 3\)"):
        gibbs.init(0, 2, weights=bad)
    with pytest.raises(ValueError, match=r"weight block a must have shape \(2,\) \+ \(N_a,\) = \(2, 2\)"):
        gibbs.init(0, 2, weights=Weights(jnp.stack([w.V0] * 2), tuple(jnp.stack([v] * 2) for v in w.V), w.a[None]))
    with pytest.raises(ValueError, match=r"xi_test must have shape"):
        run_sampler(gibbs, np.zeros((3, 5, 4)), 2, progress=False)
    with pytest.raises(ValueError, match=r"n_draws must be an int >= 1"):
        run_sampler(gibbs, np.zeros((3, 4, 4)), 0, progress=False)
    with pytest.raises(ValueError, match="sampling needs T > 0"):
        sample_from_features(spec.replace(temperature=0.0), np.zeros((6, 4, 4)), y, np.zeros((3, 4, 4)),
                             method="nuts")
    with pytest.raises(ValueError, match="at least 4 draws"):
        summarize(PosteriorDraws(np.zeros((1, 3, 2)), np.zeros((1, 3, 4, 4)), 1, 0.0))


def test_init_from_given_weights():
    spec, x, att, y, w, *_ = _problem((2, 2), "last")
    gibbs = BlockedGibbs(spec, att, x, y)
    state = gibbs.init(0, 3, weights=w)
    assert state.weights.V0.shape == (3,) + w.V0.shape
    np.testing.assert_array_equal(state.weights.V[1][2], w.V[1])
    assert state.key.shape == (3, 2)


def test_save_every_writes_after_that_many_draws(tmp_path, monkeypatch):
    """Every save appends only the draws made since the previous one (one part each)."""
    gibbs, xi_test = _small_gibbs()
    written = []
    save = store_module.DrawStore.save

    def spy(self, leaves, warmup_done, seconds, n_draws, new_f=None, new_U=None):
        written.append(0 if new_f is None else new_f.shape[1])
        save(self, leaves, warmup_done, seconds, n_draws, new_f, new_U)

    monkeypatch.setattr(store_module.DrawStore, "save", spy)
    path = tmp_path / "r.npz"
    draws = run_sampler(gibbs, xi_test, 5, n_chains=1, path=path, save_every=2, save_interval=1e9,
                        progress=False)
    assert written == [2, 2, 1]
    assert sorted(os.listdir(store_module.parts_folder(path))) == ["000000.npz", "000001.npz", "000002.npz"]
    np.testing.assert_array_equal(store_module.load_draws(path).f_test, draws.f_test)


def test_summary_standard_errors_on_independent_draws():
    rng = np.random.default_rng(0)
    f = rng.normal(1.0, 2.0, size=(4, 2500, 3))
    U = rng.normal(size=(4, 2500, 2, 2))
    s = summarize(PosteriorDraws(f, U, 3, 1.0))
    assert s.mean.shape == s.var.shape == s.rhat_mean.shape == (3,) and s.U.shape == s.U_se.shape == (2, 2)
    np.testing.assert_allclose(s.mean_se, 2.0 / math.sqrt(10_000), rtol=0.1)
    np.testing.assert_allclose(s.var_se, math.sqrt(2 * 16 / 10_000), rtol=0.15)  # var of s^2: 2 sigma^4 / n
    np.testing.assert_allclose(s.iat_mean, 3.0, rtol=0.15)  # independent draws, thinned by 3
    assert np.all(np.abs(s.mean - 1.0) < 5 * s.mean_se) and np.all(np.abs(s.rhat_mean - 1) < 0.01)


@pytest.mark.slow
def test_gibbs_matches_theory_on_markov_task():
    """4-path Markov task, P = 100, T = 0.01: sampled predictor mean vs theory within 5% at N = 10 and 100, and
    the sampled U_1 approaching the theory's as N grows (finite-size corrections shrink)."""
    from attnpaths._src.tasks.markov import markov_data, markov_network

    net = markov_network("4paths")
    train, test = markov_data(net)
    xi, xit = path_features(net.spec, net.attention, train.x), path_features(net.spec, net.attention, test.x)
    rel_mean, rel_U = {}, {}
    for N in (10, 100):
        spec = net.spec.with_width(N)
        U1 = np.asarray(attnpaths.solve_saddle(spec, xi, train.y).U[0])
        theory = np.asarray(attnpaths.predict(spec, xi, train.y, xit, U1).mean)
        draws = run_sampler(BlockedGibbs.from_features(spec, xi, train.y), xit, 2000, n_chains=4, n_warmup=500,
                            seed=0, progress=False)
        s = summarize(draws)
        assert np.nanmax(s.rhat_mean) < 1.05
        rel_mean[N] = np.linalg.norm(s.mean - theory) / np.linalg.norm(theory)
        rel_U[N] = np.linalg.norm(s.U - U1) / np.linalg.norm(U1)
    assert rel_mean[10] < 0.05 and rel_mean[100] < 0.05, rel_mean
    assert rel_U[100] < rel_U[10] / 2, rel_U


def test_path_gram_is_kept_up_to_its_memory_cap_only(monkeypatch):
    """The fixed (H, H, P, P) path Gram is built while H^2 P^2 entries fit the cap, and not beyond (the V0
    draw then builds its Gram from the factors; the same draw, see the sweep test above)."""
    import attnpaths._src.sampling.gibbs as gibbs_module

    spec, x, att, *_ = _problem((2, 3), "last")
    xi = path_features(spec, att, x)
    P, _, H = xi.shape
    monkeypatch.setattr(gibbs_module, "_PATH_GRAM_MAX", H * H * P * P)
    C0 = gibbs_module.path_gram(xi)
    assert C0 is not None and C0.shape == (H, H, P, P)
    np.testing.assert_allclose(C0[1, 4], np.asarray(xi)[:, :, 1] @ np.asarray(xi)[:, :, 4].T, rtol=1e-13)
    monkeypatch.setattr(gibbs_module, "_PATH_GRAM_MAX", H * H * P * P - 1)
    assert gibbs_module.path_gram(xi) is None


@pytest.mark.parametrize("heads, widths", [((2, 3), [3, 4, 2]), ((2, 1, 2), [3, 2, 4, 2])])
def test_reduced_rank_bounds_the_rank_of_the_block_features(heads, widths):
    """r = H_b min(S, N_out) N_in bounds the rank of each block's explicit (P, D) features (P > r), which the
    r x r route needs to be exact; it equals it for two layers, and is loose for the third block of (2, 1, 2)."""
    from attnpaths._src.sampling.gibbs import reduced_rank

    spec, x, att, y, w, *_ = _problem(heads, P=80, widths=widths)
    xi = path_features(spec, att, x)
    bound = [reduced_rank(b) for b in linear_blocks(spec, w, xi)]
    rank = [int(np.linalg.matrix_rank(phi)) for phi in _explicit_phis(spec, w, x, att)]
    assert all(r <= b < 80 for r, b in zip(rank, bound)), (rank, bound)
    assert (rank == bound) == (len(heads) == 2), (rank, bound)
