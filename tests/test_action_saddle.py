"""The action and its minimum (spec B.4-B.6, C.1) against independent computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from scipy.optimize import brentq, minimize, minimize_scalar

import attnpaths as ap
from attnpaths._src.action import action_of, energy_derivatives
from attnpaths._src.order import pack_order, unpack_order
from conftest import random_problem


def random_spd(n, rng, scale=1.0):
    A = rng.normal(size=(n, n))
    return scale * (A @ A.T / n + np.eye(n))


def brute_entropy(Us, spec):
    """S_ent with explicit Kronecker products I_h (x) U_{l+1} and the U_a minimised numerically."""
    N, v, heads = spec.widths, spec.variances, spec.heads
    L = len(heads)

    def total(U_a):
        s = N[-1] * (U_a / v[-1] - np.log(U_a))
        parents = list(Us[1:]) + [np.array([[U_a]])]
        for l in range(L):
            big = np.kron(np.eye(heads[l]), parents[l])
            s += N[l] * (np.trace(np.linalg.solve(big, Us[l])) / v[l + 1] - np.linalg.slogdet(Us[l])[1]
                         + np.linalg.slogdet(big)[1])
        return s

    best = minimize_scalar(lambda t: total(np.exp(t)), bracket=(-3, 3), tol=1e-12)
    return total(np.exp(best.x)), np.exp(best.x)


@pytest.mark.parametrize("heads", [(3,), (2, 2), (2, 1, 2)])
def test_entropy_and_closed_form_U_a(heads):
    rng = np.random.default_rng(0)
    spec = ap.NetworkSpec(heads=heads, widths=[7.0 + l for l in range(len(heads) + 1)],
                          variances=[1.3 + 0.2 * l for l in range(len(heads) + 2)])
    Us = [random_spd(n, rng) for n in spec.level_sizes]
    expected, U_a = brute_entropy(Us, spec)
    got = ap.entropy([jnp.asarray(U) for U in Us], spec.hyper(), spec.heads)
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    np.testing.assert_allclose(ap.scalar_order_parameter(jnp.asarray(Us[-1]), spec.hyper(), heads[-1]), U_a,
                               rtol=1e-6)


@pytest.mark.parametrize("P, n0", [(15, 4), (6, 11)])  # feature-space and example-space routes
def test_energy_derivatives_match_autodiff(P, n0):
    rng = np.random.default_rng(1)
    H = 3
    xi, y = jnp.asarray(rng.normal(size=(P, n0, H))), jnp.asarray(np.sign(rng.normal(size=P)))
    U = jnp.asarray(random_spd(H, rng))

    def E(U):
        return ap.energy(ap.renormalized_kernel(0.5 * (U + U.T), xi, xi, 1.7), y, 0.2)

    val, grad, hess = energy_derivatives(U, xi, y, 1.7, 0.2)
    np.testing.assert_allclose(val, E(U), rtol=1e-12)
    np.testing.assert_allclose(grad, jax.jit(jax.grad(E))(U), rtol=1e-10, atol=1e-12)
    # compare on symmetric directions (the only ones U moves in)
    sym = np.zeros((H * H, H * H))
    for a in range(H):
        for b in range(H):
            sym[a * H + b, a * H + b] += 0.5
            sym[a * H + b, b * H + a] += 0.5
    np.testing.assert_allclose(sym @ np.asarray(hess).reshape(H * H, H * H) @ sym,
                               np.asarray(jax.jit(jax.hessian(E))(U)).reshape(H * H, H * H), rtol=1e-9, atol=1e-11)


def closed_form_action_gradient(Us, xi, y, spec):
    """dS/dU_l of S = (E(U_1) + S_ent(U)) / N_max (spec B.4), by hand in NumPy, each as an (n_l, n_l) matrix.

    Energy: K = s_0 sum_pq U_pq C_pq with C_pq[mu, nu] = sum_i xi[mu, i, p] xi[nu, i, q], so with A = K + T I and
    alpha = A^-1 y, dE/dU_pq = s_0 (Tr(A^-1 C_pq) - alpha^T C_pq alpha).
    Entropy: U_a minimises S_ent (B.5), so its dependence on U_L adds nothing (envelope theorem) and U_a is held
    fixed. Bracket l, N_l [Tr(B_l^-1 U_l) / s_l - ln det U_l + h_l ln det U_{l+1}] with B_l = I_{h_l} (x) U_{l+1}
    (U_{L+1} = U_a), gives U_l the term N_l (B_l^-1 / s_l - U_l^-1) and its parent U_{l+1} the term
    N_l (-U_{l+1}^-1 R_l U_{l+1}^-1 / s_l + h_l U_{l+1}^-1), R_l = sum_h U_l[h-block, h-block].
    """
    N, v, heads, T = spec.widths, spec.variances, spec.heads, spec.temperature
    a, y = np.asarray(xi), np.asarray(y)
    C = np.einsum("mip,niq->pqmn", a, a)
    A = v[0] * np.einsum("pq,pqmn->mn", Us[0], C) + T * np.eye(len(y))
    alpha = np.linalg.solve(A, y)
    grads = [np.zeros_like(U) for U in Us]
    grads[0] += v[0] * (np.einsum("mn,pqnm->pq", np.linalg.inv(A), C) - np.einsum("m,pqmn,n->pq", alpha, C, alpha))
    # U_a from its stationarity condition dS_ent/dU_a = 0, by root finding (not the library's quadratic formula)
    N_a, s_a, N_L, s_L, H_L = N[-1], v[-1], N[-2], v[-2], heads[-1]
    U_a = brentq(lambda u: N_a * (1 / s_a - 1 / u) + N_L * (H_L / u - np.trace(Us[-1]) / (s_L * u * u)),
                 1e-8, 1e8, xtol=1e-300, rtol=1e-15)
    parents = list(Us[1:]) + [np.array([[U_a]])]
    for l, (U, parent, h) in enumerate(zip(Us, parents, heads)):
        s_l = v[l + 1]
        grads[l] += N[l] * (np.linalg.inv(np.kron(np.eye(h), parent)) / s_l - np.linalg.inv(U))
        if l + 1 < len(Us):
            n = parent.shape[0]
            R = np.einsum("hahb->ab", U.reshape(h, n, h, n))
            inv = np.linalg.inv(parent)
            grads[l + 1] += N[l] * (-inv @ R @ inv / s_l + h * inv)
    return [g / max(N) for g in grads]


@pytest.mark.parametrize("heads", [(2, 3), (2, 1, 2)])
def test_action_gradient_is_the_closed_form(heads):
    """jax.grad of `action` in packed coordinates (spec C.1) against the gradient derived by hand: a wrong term or
    sign in the energy, the entropy or U_a shows here (a finite difference of `action` itself could not)."""
    spec, attention, x, y, *_ = random_problem(heads, seed=3)
    widths = [6.0 + 2 * l for l in range(len(heads))] + [4.0]
    spec = spec.replace(widths=widths, variances=[1.7, 0.8, 1.3, 0.6, 1.1][:len(heads) + 2], temperature=0.3)
    xi = ap.path_features(spec, attention, x)
    rng = np.random.default_rng(2)
    Us = [random_spd(n, rng) for n in spec.level_sizes]
    sizes = spec.level_sizes

    def S(p):
        return ap.action(unpack_order(p, sizes), xi, jnp.asarray(y), spec.hyper(), spec.heads)

    got = np.asarray(jax.jit(jax.grad(S))(pack_order([jnp.asarray(U) for U in Us])))
    # packed coordinate (i, j), i < j, moves U_ij and U_ji together: its derivative is G_ij + G_ji
    expected = np.concatenate([(G + G.T - np.diag(np.diag(G)))[np.triu_indices(G.shape[0])]
                               for G in closed_form_action_gradient(Us, xi, y, spec)])
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_action_is_energy_plus_entropy_over_the_largest_width(problem):
    """S = (ln det(K + T I) + y^T (K + T I)^-1 y + S_ent) / N_max with K = s_0 sum U_pq xi_p . xi_q, written out
    in NumPy with unequal widths and variances; `action` and `action_of` on both routes agree with it."""
    from attnpaths._src.routes import example_data, gram_from_features

    spec, *_, y, xt, yt, xi, xit = problem
    spec = spec.replace(widths=[6.0, 9.0, 4.0], variances=[1.7, 0.8, 1.3, 0.6], temperature=0.3)
    rng = np.random.default_rng(12)
    Us = [random_spd(n, rng) for n in spec.level_sizes]
    a = np.asarray(xi)
    K = spec.variances[0] * np.einsum("mip,pq,niq->mn", a, Us[0], a) + spec.temperature * np.eye(len(y))
    energy = np.linalg.slogdet(K)[1] + y @ np.linalg.solve(K, y)
    expected = (energy + brute_entropy(Us, spec)[0]) / max(spec.widths)
    hyper, jUs = spec.hyper(), [jnp.asarray(U) for U in Us]
    np.testing.assert_allclose(ap.action(jUs, xi, jnp.asarray(y), hyper, spec.heads), expected, rtol=1e-9)
    for data in (example_data(xi, y), gram_from_features(xi, jnp.asarray(y))):
        np.testing.assert_allclose(action_of(jUs, data, hyper, spec.heads), expected, rtol=1e-9)


def saddle_point_residuals(saddle, xi, y):
    """dS/dU_l = 0 written out in NumPy (spec B.4), for L = 2, at the solver's minimum."""
    spec = saddle.spec
    N, v, (H1, H2) = spec.widths, spec.variances, spec.heads
    U1, U2, U_a = saddle.U[0], saddle.U[1], saddle.U_a
    xi = np.asarray(xi)
    P, n0, H = xi.shape
    K = v[0] * np.einsum("mip,pq,niq->mn", xi, U1, xi)
    Ainv = np.linalg.inv(K + spec.temperature * np.eye(P))
    alpha = Ainv @ y
    G = np.zeros((H, H))
    for c in range(H):
        for d in range(H):
            G[c, d] = v[0] * (np.trace(xi[:, :, c].T @ Ainv @ xi[:, :, d])
                              - (xi[:, :, c].T @ alpha) @ (xi[:, :, d].T @ alpha))
    inv1 = np.linalg.inv(U1)
    r1 = N[0] * (np.linalg.inv(np.kron(np.eye(H1), U2)) / v[1] - inv1) + G
    inv2 = np.linalg.inv(U2)
    reduced = np.einsum("hahb->ab", U1.reshape(H1, H2, H1, H2))
    r2 = (N[1] * (np.eye(H2) / (v[2] * U_a) - inv2)
          + N[0] * (-inv2 @ reduced @ inv2 / v[1] + H1 * inv2))
    return r1 / max(N), r2 / max(N)


@pytest.mark.parametrize("width", [3.0, 20.0])
def test_minimum_solves_saddle_point_equations(problem, width):
    spec, *_, y, xt, yt, xi, xit = problem
    saddle = ap.solve_saddle(spec.with_width(width), xi, y)
    assert saddle.converged and saddle.grad_max <= 1e-8 and saddle.min_hessian_eigenvalue > 0
    for r in saddle_point_residuals(saddle, xi, y):
        assert np.max(np.abs(r)) < 1e-7
    # U_a is at its own minimum too
    assert saddle.U_a == pytest.approx(brute_entropy(saddle.U, saddle.spec)[1], rel=1e-6)
    # U is far from the GP value at small width: the test is not trivially satisfied by the initial point
    if width == 3.0:
        assert np.max(np.abs(saddle.U1 - np.eye(spec.n_paths))) > 0.05


def test_one_head_per_layer_is_a_deep_linear_network():
    """With H_l = 1 the model is a deep linear network on the single path input; its kernel renormalisation
    has scalar order parameters. Minimise the scalar action written out by hand (eigenbasis of the kernel,
    U_a free, scipy) and compare U and the predictor."""
    spec, attention, x, y, xt, yt = random_problem((1, 1), n_train=20, widths=[4.0, 6.0, 5.0],
                                                   variances=[1.5, 0.8, 1.2, 0.9], temperature=0.05, seed=4)
    xi, xit = ap.path_features(spec, attention, x), ap.path_features(spec, attention, xt)
    N1, N2, Na = spec.widths
    s0, s1, s2, sa = spec.variances
    K0 = s0 * np.asarray(xi)[:, :, 0] @ np.asarray(xi)[:, :, 0].T
    lam, phi = np.linalg.eigh(K0)
    proj = (phi.T @ y) ** 2

    def S(t):
        u1, u2, ua = np.exp(t)
        ent = (Na * (ua / sa - np.log(ua)) + N2 * (u2 / (s2 * ua) - np.log(u2) + np.log(ua))
               + N1 * (u1 / (s1 * u2) - np.log(u1) + np.log(u2)))
        return np.sum(np.log(u1 * lam + spec.temperature)) + np.sum(proj / (u1 * lam + spec.temperature)) + ent

    best = minimize(S, np.zeros(3), method="BFGS", options={"gtol": 1e-10})
    u1 = np.exp(best.x[0])
    saddle = ap.solve_saddle(spec, xi, y)
    np.testing.assert_allclose(saddle.U1[0, 0], u1, rtol=1e-6)
    np.testing.assert_allclose(saddle.U[1][0, 0], np.exp(best.x[1]), rtol=1e-6)
    k = s0 * np.asarray(xit)[:, :, 0] @ np.asarray(xi)[:, :, 0].T
    mean = u1 * k @ np.linalg.solve(u1 * K0 + spec.temperature * np.eye(len(y)), y)
    np.testing.assert_allclose(ap.predict(spec, xi, y, xit, saddle.U1).mean, mean, rtol=1e-6)
    assert abs(u1 - 0.8 * 1.2 * 0.9) > 0.01  # finite width moved it away from the GP value


def test_large_width_tends_to_gp_limit(problem):
    spec, *_, y, xt, yt, xi, xit = problem
    errors = []
    for n in [1e2, 1e4, 1e6]:
        saddle = ap.solve_saddle(spec.with_width(n), xi, y)
        errors.append(np.max(np.abs(saddle.U1 - ap.gp_order(spec)[0])))
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-4
    assert errors[1] / errors[2] == pytest.approx(100, rel=0.2)  # O(P/N) correction
    saddle = ap.solve_saddle(spec.with_width(1e8), xi, y)
    gp = ap.predict(spec, xi, y, xit)
    np.testing.assert_allclose(ap.predict(spec, xi, y, xit, saddle.U1).mean, gp.mean, rtol=1e-5, atol=1e-7)
    # the GP predictor itself equals textbook GP regression on the brute-force GP kernel
    K = np.einsum("mip,nip->mn", np.asarray(xi), np.asarray(xi))
    k = np.einsum("mip,nip->mn", np.asarray(xi), np.asarray(xit))
    mean = k.T @ np.linalg.solve(K + spec.temperature * np.eye(len(y)), y)
    var = np.einsum("mip,mip->m", np.asarray(xit), np.asarray(xit)) - np.einsum(
        "pm,pm->m", k, np.linalg.solve(K + spec.temperature * np.eye(len(y)), k))
    np.testing.assert_allclose(gp.mean, mean, rtol=1e-10)
    np.testing.assert_allclose(gp.var, var, rtol=1e-8, atol=1e-12)


def test_permuting_heads_permutes_U_and_keeps_predictor(problem):
    spec, attention, x, y, xt, yt, xi, xit = problem
    perm = np.array([2, 0, 1])  # permute the 3 heads of layer 2
    permuted = [attention[0], ap.BilinearHeads(attention[1].W[perm], attention[1].beta)]
    xi_p, xit_p = ap.path_features(spec, permuted, x), ap.path_features(spec, permuted, xt)
    a = ap.solve_saddle(spec.with_width(3.0), xi, y)
    b = ap.solve_saddle(spec.with_width(3.0), xi_p, y)
    paths = np.arange(spec.n_paths).reshape(spec.heads)[:, perm].ravel()
    np.testing.assert_allclose(b.U1, a.U1[np.ix_(paths, paths)], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(b.U[1], a.U[1][np.ix_(perm, perm)], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ap.predict(spec, xi_p, y, xit_p, b.U1).mean,
                               ap.predict(spec, xi, y, xit, a.U1).mean, rtol=1e-6, atol=1e-9)


def test_width_sweep_does_not_recompile(problem):
    spec, *_, y, xt, yt, xi, xit = problem
    from attnpaths._src import saddle as saddle_module

    ap.solve_saddle(spec.with_width(5.0), xi, y)
    compiled = (saddle_module._model, saddle_module._trial)
    before = [f._cache_size() for f in compiled]
    ap.solve_widths(spec.replace(temperature=0.3, variances=1.5), xi, y, [7.0, 70.0])
    ap.solve_saddle(spec.with_width(9.0), xi[:-2], y[:-2])  # another P in the same bucket of the example route
    assert [f._cache_size() for f in compiled] == before


# Every new head architecture compiles the solver anew (about 15 s of CPU each): the default run draws from the
# architectures the other tests of this module compile anyway; `pytest -m slow` draws any architecture.
ARCHITECTURES = {"compiled": st.sampled_from([(2, 3), (1, 1), (2, 1, 2)]),
                 "any": st.lists(st.integers(1, 3), min_size=1, max_size=3)}


@pytest.mark.parametrize("architectures", ["compiled", pytest.param("any", marks=pytest.mark.slow)])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), width=st.sampled_from([2.0, 8.0, 100.0]), temperature=st.sampled_from([0.05, 0.5]),
       seed=st.integers(0, 1000), readout=st.sampled_from(["mean", "first", "last"]))
def test_random_architectures_converge_to_spd_minimum(architectures, data, width, temperature, seed, readout):
    heads = data.draw(ARCHITECTURES[architectures], label="heads")
    spec, attention, x, y, xt, yt = random_problem(tuple(heads), n_train=10, seed=seed, readout=readout,
                                                   widths=width, temperature=temperature, scale=3.0)
    xi, xit = ap.path_features(spec, attention, x), ap.path_features(spec, attention, xt)
    saddle = ap.solve_saddle(spec, xi, y)
    assert saddle.converged and saddle.min_hessian_eigenvalue > 0
    assert min(saddle.grad_max, saddle.relative_grad_max) <= 1e-8  # the stopping rule: absolute or relative to U
    for U in saddle.U:
        np.testing.assert_allclose(U, U.T, atol=1e-12)
        assert np.linalg.eigvalsh(U).min() > 0
    pred = ap.predict(spec, xi, y, xit, saddle.U1)
    assert np.all(np.isfinite(pred.mean)) and pred.var.min() > -1e-10
    # the minimum is lower than the GP point
    gp = ap.action([jnp.asarray(U) for U in ap.gp_order(spec)], xi, jnp.asarray(y), spec.hyper(), spec.heads)
    assert saddle.action <= float(gp) + 1e-12


def test_certificate_equals_a_fresh_packed_hessian(problem):
    """The solver reuses its last energy derivatives for the certificate; a fresh evaluation agrees."""
    from attnpaths._src.saddle import packed_hessian

    spec, *_, y, xt, yt, xi, xit = problem
    saddle = ap.solve_saddle(spec.with_width(3.0), xi, y)
    fresh = packed_hessian([jnp.asarray(U) for U in saddle.U], xi, jnp.asarray(y), saddle.spec.hyper(), spec.heads)
    assert np.linalg.eigvalsh(np.asarray(fresh))[0] == pytest.approx(saddle.min_hessian_eigenvalue, rel=1e-8)


@pytest.mark.parametrize("before, after, expected", [
    (1e-4, 1e-7, True),  # predicted 2e-10
    (4e-4, 0.99e-6, True),  # just inside CHORD_MARGIN * tol = 5e-9
    (4e-4, 1.01e-6, False),  # just outside
    (1e-3, 1e-5, False),  # a Newton step that is not yet in its quadratic phase
    (1e-7, 1e-7, False),  # no contraction
    (1e-9, 2e-9, False),  # growth
])
def test_chord_step_rule(before, after, expected):
    from attnpaths._src.saddle import CHORD_MARGIN, _chord_step

    assert CHORD_MARGIN == 0.5
    assert _chord_step(before, after, 1e-8) is expected


def _counting(monkeypatch, module, name):
    calls = []
    real = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_chord_steps_reuse_the_hessian_and_reach_the_same_certified_minimum(monkeypatch, problem):
    """Near the minimum a dense step may reuse the previous point's Hessian (`_chord_step`); never twice in a
    row, and the certificate is the Hessian at the returned point either way."""
    import attnpaths._src.saddle as saddle_module

    spec, *_, y, xt, yt, xi, xit = problem
    spec = spec.with_width(3.0).replace(temperature=1.0)  # gradients 1.0e-3, 8.8e-7: the third step is a chord
    hessians = _counting(monkeypatch, saddle_module, "_whitened_hessian")
    chord = ap.solve_saddle(spec, xi, y)
    used = len(hessians)
    assert chord.converged and used < chord.iterations  # at least one chord step on this problem

    hessians.clear()
    monkeypatch.setattr(saddle_module, "_chord_step", lambda *args: False)
    exact = ap.solve_saddle(spec, xi, y)
    assert exact.converged and len(hessians) == exact.iterations
    assert chord.action == pytest.approx(exact.action, rel=1e-12)
    np.testing.assert_allclose(chord.U[0], exact.U[0], rtol=1e-6, atol=1e-8)
    assert chord.min_hessian_eigenvalue == pytest.approx(exact.min_hessian_eigenvalue, rel=1e-6)

    hessians.clear()
    monkeypatch.setattr(saddle_module, "_chord_step", lambda *args: True)
    always = ap.solve_saddle(spec, xi, y)  # a chord step after every Newton step: one Hessian per two steps
    assert always.converged and always.action == pytest.approx(exact.action, rel=1e-12)
    assert len(hessians) >= always.iterations // 2


def test_a_rejected_chord_step_is_retried_with_a_fresh_hessian(monkeypatch, problem):
    import attnpaths._src.saddle as saddle_module

    spec, *_, y, xt, yt, xi, xit = problem
    events = []
    real_hessian, real_trial = saddle_module._whitened_hessian, saddle_module._trial

    def hessian(*args):
        events.append("H")
        return real_hessian(*args)

    def trial(*args):
        events.append("T")
        S, Us, f = real_trial(*args)
        return (jnp.nan if events.count("T") == 2 else S), Us, f  # the chord step after the first step fails

    monkeypatch.setattr(saddle_module, "_whitened_hessian", hessian)
    monkeypatch.setattr(saddle_module, "_trial", trial)
    monkeypatch.setattr(saddle_module, "_chord_step", lambda *args: True)
    saddle = ap.solve_saddle(spec.with_width(3.0).replace(temperature=1.0), xi, y)
    assert saddle.converged
    assert events[:4] == ["H", "T", "T", "H"]


def test_an_accepted_step_takes_over_the_trials_factors(monkeypatch, problem):
    """The solver factorises the kernel once per step: the model at an accepted point is built from the trial's
    energy factors (`_model_from`), and equals the model computed afresh there."""
    import attnpaths._src.saddle as saddle_module
    from attnpaths._src.routes import training_data

    spec, *_, y, xt, yt, xi, xit = problem
    spec = spec.with_width(3.0)
    fresh = _counting(monkeypatch, saddle_module, "_model")
    saddle = ap.solve_saddle(spec, xi, y)
    assert saddle.iterations >= 2 and len(fresh) == 1  # the initial point's model only

    data, hyper = training_data(spec, xi, y), spec.hyper()
    start = saddle_module._model([jnp.asarray(U) for U in ap.gp_order(spec)], data, hyper, spec.heads, False, False)
    x = jnp.asarray(np.random.default_rng(0).normal(size=start.grad.shape) * 0.1)
    S, Us, f = saddle_module._trial(start.Ls, x, data, hyper, spec.heads, False)
    taken = saddle_module._model_from(list(Us), f, hyper, spec.heads)
    again = saddle_module._model(list(Us), data, hyper, spec.heads, False, False)
    assert float(taken.S) == float(S)
    assert float(taken.S) == pytest.approx(float(again.S), rel=1e-13)
    np.testing.assert_allclose(taken.grad, again.grad, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(taken.grad_max, again.grad_max, rtol=1e-10)


def test_stopping_rule_is_scale_free(problem):
    """Features of scale 1e6 make U tiny and |dS/dU| huge: the absolute rule cannot be met in float64, the
    relative one (gradient with respect to relative changes of U) is, at a point solving the saddle-point
    equations."""
    spec, *_, y, xt, yt, xi, xit = problem
    big = np.asarray(xi) * 1e6
    saddle = ap.solve_saddle(spec.with_width(3.0), big, y)
    assert saddle.converged and saddle.relative_grad_max <= 1e-8 < saddle.grad_max
    r1, r2 = saddle_point_residuals(saddle, big, y)
    U1 = saddle.U1
    L = np.linalg.cholesky(U1)
    # the saddle-point equations hold in relative form, to the NumPy reference's own rounding (it inverts
    # K + T I with K ~ 1e12 explicitly, and r2's entries are differences of terms of size ~1e3)
    assert np.max(np.abs(L.T @ r1 @ L)) < 1e-6
    L2 = np.linalg.cholesky(saddle.U[1])
    assert np.max(np.abs(L2.T @ r2 @ L2)) < 1e-6
    assert np.abs(U1).max() < 1e-9  # U absorbed (part of) the scale: the case is really badly scaled


def brute_trust_region(g, B, radius, seed=0):
    """min g.p + p.B p / 2 over ||p|| <= radius by SLSQP from many starts (independent of the solver's
    eigen-decomposition and secular equation)."""
    rng = np.random.default_rng(seed)
    model = lambda p: g @ p + 0.5 * p @ B @ p  # noqa: E731
    cons = [{"type": "ineq", "fun": lambda p: radius ** 2 - p @ p, "jac": lambda p: -2 * p}]
    best = None
    for _ in range(12):
        p0 = rng.normal(size=g.size)
        p0 *= 0.9 * radius * rng.uniform() / np.linalg.norm(p0)
        res = minimize(model, p0, jac=lambda p: g + B @ p, constraints=cons, method="SLSQP",
                       options={"ftol": 1e-15, "maxiter": 500})
        if np.linalg.norm(res.x) <= radius * (1 + 1e-8) and (best is None or res.fun < best):
            best = res.fun
    return best


def _subproblems():
    rng = np.random.default_rng(11)
    n = 6
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    spd = Q @ np.diag([0.5, 1.0, 2.0, 3.0, 5.0, 8.0]) @ Q.T
    indefinite = Q @ np.diag([-2.0, -0.5, 1.0, 2.0, 3.0, 4.0]) @ Q.T
    g = rng.normal(size=n)
    hard_g = Q @ np.array([0.0, 0.3, -0.2, 0.5, 0.1, 0.4])  # no component along the lowest eigenvector
    # a radius between the Cauchy point's norm and the Newton step's: CG takes a step inside, then crosses
    cauchy = (g @ g) / (g @ spd @ g) * np.linalg.norm(g)
    newton = np.linalg.norm(np.linalg.solve(spd, g))
    assert cauchy < newton
    return [("interior", g, spd, 10.0, False), ("boundary", g, spd, 0.05, True),
            ("boundary after CG steps", g, spd, np.sqrt(cauchy * newton), True),
            ("indefinite", g, indefinite, 0.7, True), ("hard case", hard_g, indefinite, 1.5, True)]


def _dense_only_subproblems():
    return [
        # indefinite with a gradient so small that the Newton step -B^-1 g fits: still not the minimum
        ("indefinite, small g", np.array([0.01, 0.01]), np.diag([-1.0, 2.0]), 1.0, True),
        # close to the hard case without being in it: g has a small component along the lowest eigenvector
        ("near hard case", np.array([1e-3, 1.0]), np.diag([-1.0, 1.0]), 2.0, True),
        # singular B (a zero eigenvalue) with g along its null direction
        ("singular", np.array([1.0, 1.0]), np.diag([0.0, 1.0]), 0.5, True),
        # nearer still: rounding stops the secular equation short of ||p|| = radius; the lowest eigenvector
        # closes the gap
        ("rounding-near hard case", np.full(3, 1e-5), np.diag([-10.0, 3.0, 12.0]), 1.2, True),
        ("rounding-near hard case 2", np.array([1e-7, 1e-3, 1e-3]), np.diag([-1.0, 1.0, 2.0]), 1.0, True),
        # the hard case with a radius below 1
        ("hard case, small radius", np.array([0.0, 0.1]), np.diag([-1.0, 1.0]), 0.5, True),
    ]


@pytest.mark.parametrize("name, g, B, radius, boundary", _subproblems() + _dense_only_subproblems())
def test_dense_trust_region_step_is_the_constrained_minimum(name, g, B, radius, boundary):
    import warnings

    from attnpaths._src.trust_region import dense_step

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division by a zero eigenvalue on the way
        p, predicted, on_boundary = dense_step(g, B, radius)
    model = g @ p + 0.5 * p @ B @ p
    assert np.linalg.norm(p) <= radius * (1 + 1e-13)
    assert on_boundary == boundary
    if boundary:
        assert np.linalg.norm(p) == pytest.approx(radius, rel=1e-13)
    assert predicted == pytest.approx(-model, rel=1e-9)
    assert model == pytest.approx(brute_trust_region(g, B, radius), rel=1e-6, abs=1e-10)


def test_secular_equation_takes_few_newton_steps(monkeypatch):
    """Newton on 1/||p(mu)|| from the left converges in a handful of steps on well-conditioned subproblems (the
    bisection safeguard alone would take ~50), by factorisations when B is positive definite and in the
    eigenbasis otherwise; near the hard case it stops once the bracket is down to rounding."""
    import attnpaths._src.trust_region as trust_region

    real, real_cholesky, steps = trust_region._boundary_shift, trust_region._cholesky_shift, {}

    def counting(*args):
        mu, iterations = real(*args)
        steps[name] = iterations
        return mu, iterations

    def counting_cholesky(*args):
        out = real_cholesky(*args)
        steps[name] = out[2]
        return out

    monkeypatch.setattr(trust_region, "_boundary_shift", counting)
    monkeypatch.setattr(trust_region, "_cholesky_shift", counting_cholesky)
    for name, g, B, radius, _ in _subproblems() + _dense_only_subproblems():
        trust_region.dense_step(g, B, radius)
    assert set(steps) == {"boundary", "boundary after CG steps", "indefinite", "indefinite, small g",
                          "near hard case", "singular", "rounding-near hard case", "rounding-near hard case 2"}
    assert max(v for k, v in steps.items() if not k.startswith("rounding")) <= 8, steps
    assert max(steps.values()) <= 60, steps


def _large_subproblem(kind, n=96, seed=0):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    lam = np.linspace(0.5, 20.0, n) if kind in ("interior", "boundary") else np.linspace(-3.0, 20.0, n)
    g = rng.normal(size=n)
    if kind == "hard case":
        g = Q @ np.concatenate([[0.0], rng.normal(size=n - 1)])
    radius = {"interior": 100.0, "boundary": 0.2, "indefinite": 0.7, "hard case": 50.0}[kind]
    return g, Q @ np.diag(lam) @ Q.T, radius


@pytest.mark.parametrize("kind, eigen_calls", [("interior", 0), ("boundary", 0), ("indefinite", 0),
                                               ("hard case", 1)])
def test_factorised_step_equals_the_eigen_step(monkeypatch, kind, eigen_calls):
    """At n >= 64 the step comes from Cholesky factorisations (and one Lanczos eigenvalue when B is
    indefinite), and equals the eigen-decomposition's; the hard case falls back to it."""
    import attnpaths._src.trust_region as trust_region

    g, B, radius = _large_subproblem(kind)
    reference = trust_region.eigen_step(g, B, radius)
    calls = []
    real = trust_region.eigen_step
    monkeypatch.setattr(trust_region, "eigen_step", lambda *a: calls.append(1) or real(*a))
    p, predicted, boundary = trust_region.dense_step(g, B, radius)
    assert len(calls) == eigen_calls
    assert boundary == reference[2] == (kind != "interior")
    np.testing.assert_allclose(p, reference[0], rtol=1e-8, atol=1e-10 * np.linalg.norm(p))
    assert predicted == pytest.approx(reference[1], rel=1e-10)
    assert predicted == pytest.approx(-(g @ p + 0.5 * p @ B @ p), rel=1e-10)


@pytest.mark.parametrize("kind", ["boundary", "indefinite"])
def test_last_secular_step_reuses_the_factor(monkeypatch, kind):
    """The secular iteration's last Newton step is a first-order update of p with the factorisation in hand: the
    same boundary step as factorising once more (to rounding), with fewer factorisations."""
    import attnpaths._src.trust_region as trust_region

    shipped, counts, real = trust_region._POLISH_TOL, {}, trust_region._cholesky
    assert shipped > 0
    # from the Krylov start the first factorisation is often already within 1e-12: start from the bound instead
    monkeypatch.setattr(trust_region, "subspace_shift", lambda *args: 0.0)

    def counting(*args, **kwargs):
        counts[polish] = counts.get(polish, 0) + 1
        return real(*args, **kwargs)

    monkeypatch.setattr(trust_region, "_cholesky", counting)
    for seed in range(3):
        g, B, radius = _large_subproblem(kind, seed=seed)
        steps = {}
        for polish in (shipped, 0.0):
            monkeypatch.setattr(trust_region, "_POLISH_TOL", polish)
            steps[polish] = trust_region.dense_step(g, B, radius)
        (p, predicted, boundary), (q, predicted_q, boundary_q) = steps[shipped], steps[0.0]
        assert boundary and boundary_q
        np.testing.assert_allclose(p, q, rtol=1e-8, atol=1e-10 * np.linalg.norm(q))
        assert predicted == pytest.approx(predicted_q, rel=1e-12)
    assert counts[shipped] < counts[0.0], counts
    # the shift it returns is the one the factorisation would have reached
    g, B, radius = _large_subproblem("boundary")
    shifts = {}
    for polish in (shipped, 0.0):
        monkeypatch.setattr(trust_region, "_POLISH_TOL", polish)
        shifts[polish] = trust_region._cholesky_shift(B, g, radius, 0.0, real(B))
    assert shifts[shipped][1] == pytest.approx(shifts[0.0][1], rel=1e-9)
    assert shifts[shipped][2] < shifts[0.0][2]


@pytest.mark.parametrize("name, g, B, radius, boundary", _subproblems())
def test_steihaug_step_decreases_the_model_within_the_region(name, g, B, radius, boundary):
    """Truncated CG: the Newton step to the documented forcing ||B p + g|| <= min(0.1, ||g||) ||g|| when it
    fits (a small g makes that tight), else a boundary point whose model value is at most the Cauchy point's;
    the predicted reduction is -model(p)."""
    from attnpaths._src.trust_region import steihaug_step

    scale = 1e-10 if name == "interior" else 1.0
    g = scale * g
    p, predicted, on_boundary, products = steihaug_step(g, lambda d: B @ d, radius, 50)
    model = g @ p + 0.5 * p @ B @ p
    assert predicted == pytest.approx(-model, rel=1e-12, abs=0)  # the interior case's model is ~1e-20
    assert 1 <= products <= 50
    if name == "interior":
        assert not on_boundary
        gnorm = np.linalg.norm(g)
        assert np.linalg.norm(B @ p + g) <= min(0.1, gnorm) * gnorm
        np.testing.assert_allclose(p, -np.linalg.solve(B, g), rtol=1e-3)
        return
    assert on_boundary and np.linalg.norm(p) == pytest.approx(radius, rel=1e-9)
    if name == "boundary after CG steps":
        assert products >= 2  # the boundary is crossed after a step inside
    # Cauchy point: the model's minimum along -g within the region
    gBg = g @ B @ g
    t = radius / np.linalg.norm(g)
    if gBg > 0:
        t = min(t, (g @ g) / gBg)
    cauchy = -t * (g @ g) + 0.5 * t * t * gBg
    assert model <= cauchy + 1e-12


def test_warm_start_uses_the_symmetric_part_of_init(problem):
    """U only enters the action through its symmetric part: a warm start at the minimum plus an antisymmetric
    matrix is the minimum itself (no iteration), and gives the same saddle."""
    spec, *_, y, xt, yt, xi, xit = problem
    spec = spec.with_width(3.0)
    a = ap.solve_saddle(spec, xi, y)
    rng = np.random.default_rng(13)
    skew = [0.1 * (lambda A: A - A.T)(rng.normal(size=U.shape)) for U in a.U]
    b = ap.solve_saddle(spec, xi, y, init=[U + S for U, S in zip(a.U, skew)])
    assert b.iterations == 0
    for Ua, Ub in zip(a.U, b.U):
        np.testing.assert_allclose(Ub, Ua, rtol=1e-12, atol=1e-14)


# ---- the trust region's bookkeeping and the solver's reports ------------------------------------------------
@pytest.mark.parametrize("radius, rho, boundary, expected", [
    (1.0, -1.0, True, 0.25),     # rejected step: shrink by 4
    (1.0, 0.2499, False, 0.25),
    (4.0, 0.0, False, 1.0),
    (1.0, 0.25, True, 1.0),      # 1/4 itself keeps the radius
    (1.0, 0.5, True, 1.0),
    (1.0, 0.75, True, 1.0),      # 3/4 itself does not grow it
    (1.0, 0.76, True, 2.0),      # good step on the boundary: double
    (3.0, 0.9, True, 6.0),
    (1.0, 0.9, False, 1.0),      # good step inside the region: the radius was not what limited it
    (8.0, 1.0, True, 10.0),      # capped
])
def test_trust_radius_follows_the_textbook_rule(radius, rho, boundary, expected):
    """Nocedal and Wright, Alg. 4.1, as documented in `next_radius`."""
    from attnpaths._src.trust_region import next_radius

    assert next_radius(radius, rho, boundary) == expected


@pytest.mark.parametrize("rho, accepted", [(-1.0, False), (0.0, False), (1e-4, False), (1.5e-4, True),
                                            (0.25, True), (1.0, True)])
def test_step_acceptance_threshold(rho, accepted):
    from attnpaths._src.trust_region import step_accepted

    assert step_accepted(rho) == accepted


@pytest.mark.parametrize("S, trial, predicted, expected", [
    (2.0, 1.0, 2.0, 0.5),             # actual / predicted decrease
    (2.0, 3.0, 2.0, -0.5),            # the action rose
    (2.0, np.nan, 1.0, -1.0),         # a non-finite trial is rejected, whatever it would give
    (2.0, -np.inf, 1.0, -1.0),
    (2.0, 1.0, 0.0, -1.0),            # no predicted decrease
    (2.0, 1.0, -1.0, -1.0),
    (1e6, 1e6, 1e-8, 1.0),            # predicted decrease below 1e3 eps |S| = 2.2e-7: the model is exact there
    (1e6, 1e6, 1e-6, 0.0),            # above it: measured, not trusted
    (1.0, 1.0, 1e-13, 1.0),           # the floor is relative to |S| (and at least 1e3 eps)
    (1.0, 1.0, 1e-12, 0.0),
    (1e6, 1e6, 3e-7, 0.0),            # just above the floor 2.2e-7 at |S| = 1e6
    (1.0, 1.0, 3e-13, 0.0),           # just above the floor 2.2e-13 at |S| <= 1
])
def test_step_quality_ratio(S, trial, predicted, expected):
    from attnpaths._src.trust_region import step_quality

    assert step_quality(S, trial, predicted) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_solver_rejects_a_non_finite_trial_and_recovers(monkeypatch, problem):
    """A trial point whose action is not finite (here injected once) is rejected, the radius shrinks, and the
    solver reaches the same minimum as without the fault."""
    import attnpaths._src.saddle as saddle_module

    spec, _, _, y, _, _, xi, _ = problem
    clean = ap.solve_saddle(spec, xi, y)
    real_trial, calls = saddle_module._trial, []

    def faulty_trial(*args):
        S, Us, f = real_trial(*args)
        calls.append(1)
        if len(calls) == 1:
            return jnp.nan, tuple(jnp.full_like(U, jnp.nan) for U in Us), f
        return S, Us, f

    monkeypatch.setattr(saddle_module, "_trial", faulty_trial)
    start = ap.solve_saddle(spec, xi, y, max_iter=0, raise_on_failure=False).action
    actions = []
    faulty = ap.solve_saddle(spec, xi, y, callback=lambda i, S, g: actions.append(S))
    assert actions[0] == start  # the first step was rejected: the solver stayed at the GP point
    assert faulty.converged and faulty.iterations > 1
    np.testing.assert_allclose(faulty.U[0], clean.U[0], rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("method", ["dense", "krylov"])
def test_reported_hessian_products_are_the_ones_made(monkeypatch, problem, method):
    import attnpaths._src.saddle as saddle_module

    spec, _, _, y, _, _, xi, _ = problem
    real_hvp, made = saddle_module._hvp, []

    def counting_hvp(*args, **kwargs):
        made.append(1)
        return real_hvp(*args, **kwargs)

    monkeypatch.setattr(saddle_module, "_hvp", counting_hvp)
    result = ap.solve_saddle(spec, xi, y, method=method)
    assert result.converged
    assert result.hessian_products == len(made)
    assert (len(made) == 0) == (method == "dense")


def test_saddle_compares_and_hashes_by_identity(problem):
    """Saddle holds arrays: field-wise == would raise on them (and make it unhashable), so it compares by
    identity and can key a dict; like every result it is frozen."""
    import dataclasses

    spec, _, _, y, _, _, xi, _ = problem
    result = ap.solve_saddle(spec, xi, y)
    copy = dataclasses.replace(result)
    assert result == result and result != copy
    assert {result: 1, copy: 2}[result] == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.action = 0.0


# ---- whitened coordinates: the solver's model against the exponential map --------------------------------------
def _expm_series(X, order: int = 6):
    """exp(X) by its power series to X^order / order!: at X = 0 its value and first two derivatives are those of
    exp exactly, all that the comparison below uses, and it compiles in a fraction of the time of
    jax.scipy.linalg.expm's second derivatives (Pade approximant, scaling and squaring, conditionals)."""
    term = total = jnp.eye(X.shape[0], dtype=X.dtype)
    for k in range(1, order + 1):
        term = term @ X / k
        total = total + term
    return total


def _whitened_matrices(x, sizes):
    """x -> symmetric X_l: upper triangles row-major, off-diagonal entries x / sqrt 2 (so ||x|| = sum ||X_l||_F)."""
    out, start = [], 0
    for n in sizes:
        X = jnp.zeros((n, n))
        for i in range(n):
            for j in range(i, n):
                value = x[start] if i == j else x[start] / np.sqrt(2.0)
                X = X.at[i, j].set(value).at[j, i].set(value)
                start += 1
        out.append(X)
    return out


def _three_layer_problem():
    spec, attention, x, y, _, _ = random_problem((2, 1, 2), n_train=10, widths=[3.0, 4.0, 5.0, 3.5],
                                                 variances=[1.2, 0.9, 1.1, 0.8, 1.3], seed=6)
    return spec, ap.path_features(spec, attention, x), y


def test_retraction_is_the_exponential_map_to_second_order():
    """U(x) = L (I + X + X^2/2) L^T agrees with L expm(X) L^T to O(|x|^3) and is positive definite for any x."""
    from attnpaths._src.saddle import _retract

    rng = np.random.default_rng(8)
    sizes = (4, 2)
    Ls = [jnp.linalg.cholesky(jnp.asarray(random_spd(n, rng))) for n in sizes]
    direction = rng.normal(size=sum(n * (n + 1) // 2 for n in sizes))
    errors = []
    for t in (1e-2, 5e-3):
        x = jnp.asarray(t * direction)
        got = _retract(Ls, x)
        expected = [L @ jax.scipy.linalg.expm(X) @ L.T for L, X in zip(Ls, _whitened_matrices(x, sizes))]
        errors.append(max(float(jnp.max(jnp.abs(g - e))) for g, e in zip(got, expected)))
    assert errors[0] < 1e-4 and errors[0] / errors[1] == pytest.approx(8.0, rel=0.05)  # third order
    for U in _retract(Ls, jnp.asarray(30.0 * direction)):
        assert np.linalg.eigvalsh(np.asarray(U))[0] > 0


@pytest.mark.parametrize("route", ["example", "gram"])
def test_solver_model_is_the_action_in_exponential_coordinates(route):
    """At a point that is not the minimum (a random U, three layers), the solver's S, gradient and dense Hessian
    in whitened coordinates equal those of x -> S(L expm(X) L^T) by autodiff (the exponential map and the
    retraction agree to second order), and U_a is the minimiser of the entropy over it."""
    from attnpaths._src.routes import training_data
    from attnpaths._src.saddle import _hvp, _model, _sizes, _whitened_hessian

    spec, xi, y = _three_layer_problem()
    rng = np.random.default_rng(9)
    Us = [jnp.asarray(random_spd(n, rng)) for n in spec.level_sizes]
    data = training_data(spec, xi, y, route)
    S, grad, grad_max, hess, _, Ls, U_a = _model(Us, data, spec.hyper(), spec.heads, True, True)
    sizes = _sizes(spec.heads)

    def S_of(x):
        Xs = _whitened_matrices(x, sizes)
        return ap.action([L @ _expm_series(X) @ L.T for L, X in zip(Ls, Xs)], xi, y, spec.hyper(), spec.heads)

    x0 = jnp.zeros(sum(n * (n + 1) // 2 for n in sizes))
    assert float(S) == pytest.approx(float(S_of(x0)), rel=1e-12)
    np.testing.assert_allclose(grad, jax.jit(jax.grad(S_of))(x0), rtol=1e-9, atol=1e-11)
    reference = jax.jit(jax.hessian(S_of))(x0)
    np.testing.assert_allclose(hess, reference, rtol=1e-8, atol=1e-10)
    assert float(U_a) == pytest.approx(brute_entropy(Us, spec)[1], rel=1e-6)
    # the Krylov method's Hessian-vector products, from the W factor on the example route (the dense model
    # above kept M; the Gram route always keeps M)
    f = _model(Us, data, spec.hyper(), spec.heads, False, False).factors
    # the solver's own dense Hessian: from factors that kept W (example route), M formed inside or not
    for form_M in (True, False):
        np.testing.assert_allclose(_whitened_hessian(Ls, f, spec.hyper(), spec.heads, form_M), reference,
                                   rtol=1e-8, atol=1e-10)
    # the entropy's part by autodiff, or from the Curvature formed with the preconditioner
    from attnpaths._src.krylov import krylov_parts

    _, curvature, operands = krylov_parts(Ls, f, spec.hyper(), spec.heads)
    assert curvature is not None and (operands is None) == (f.W is None)
    for w in np.random.default_rng(10).normal(size=(3, x0.size)):
        for given in ((None, None), (curvature, None), (curvature, operands)):
            np.testing.assert_allclose(_hvp(Ls, f, spec.hyper(), spec.heads, jnp.asarray(w), *given), reference @ w,
                                       rtol=1e-8, atol=1e-10 * float(jnp.max(jnp.abs(reference))))
    # the stopping rule's two gradients: max |dS/dU| and max |L^T dS/dU L| over the levels
    dS = jax.jit(jax.grad(lambda U: ap.action([0.5 * (u + u.T) for u in U], xi, y, spec.hyper(), spec.heads)))(Us)
    absolute = max(float(jnp.max(jnp.abs(g))) for g in dS)
    relative = max(float(jnp.max(jnp.abs(L.T @ g @ L))) for g, L in zip(dS, Ls))
    np.testing.assert_allclose(grad_max, [absolute, relative], rtol=1e-9)


def test_packed_hessian_away_from_the_minimum():
    """The dense certificate's Hessian in packed coordinates at a random U (three layers, unequal variances)
    against jax.hessian of the public action."""
    from attnpaths._src.saddle import packed_hessian

    spec, xi, y = _three_layer_problem()
    rng = np.random.default_rng(12)
    Us = [jnp.asarray(random_spd(n, rng)) for n in spec.level_sizes]
    sizes = spec.level_sizes
    reference = jax.jit(jax.hessian(lambda p: ap.action(unpack_order(p, sizes), xi, jnp.asarray(y), spec.hyper(),
                                                        spec.heads)))(pack_order(Us))
    np.testing.assert_allclose(packed_hessian(Us, xi, y, spec.hyper(), spec.heads), reference, rtol=1e-8,
                               atol=1e-10 * float(jnp.max(jnp.abs(reference))))


@pytest.mark.parametrize("method, n_paths, chosen", [("auto", 1, "dense"), ("auto", 64, "dense"),
                                                     ("auto", 65, "krylov"), ("dense", 300, "dense"),
                                                     ("krylov", 2, "krylov")])
def test_auto_method_is_dense_up_to_64_paths(method, n_paths, chosen):
    from attnpaths._src.saddle import _choose_method

    assert _choose_method(method, n_paths) == chosen


def test_three_layer_minimum_and_its_U_a():
    """Unequal heads per layer (2, 1, 2): the minimum solves the saddle-point equations and U_a minimises the
    entropy given U (the readout level uses the last layer's heads)."""
    spec, xi, y = _three_layer_problem()
    saddle = ap.solve_saddle(spec, xi, y)
    assert saddle.converged
    gradient = jax.jit(jax.grad(lambda Us: ap.action([0.5 * (U + U.T) for U in Us], xi, y, spec.hyper(),
                                                     spec.heads)))([jnp.asarray(U) for U in saddle.U])
    assert max(float(jnp.max(jnp.abs(g))) for g in gradient) < 1e-8
    assert saddle.U_a == pytest.approx(brute_entropy(saddle.U, spec)[1], rel=1e-6)


@pytest.mark.parametrize("width, hinted", [(0.5, True), (1.0, False), (3.0, False)])
def test_non_convergence_hints_at_widths_below_one_only(problem, width, hinted):
    spec, *_, y, _, _, xi, _ = problem
    with pytest.raises(RuntimeError, match="did not converge") as err:
        ap.solve_saddle(spec.with_width(width), xi, y, max_iter=0)
    assert ("are below 1" in str(err.value)) == hinted
    assert ("Try a warm start" in str(err.value)) != hinted


@pytest.mark.parametrize("partial, expected", [([0.123], 0.123), ([], None)])
def test_certificate_when_lanczos_does_not_converge(monkeypatch, problem, partial, expected):
    """ARPACK that stops unconverged: the certificate is its converged eigenvalue if it has one, else NaN, and
    a NaN certificate is a failure, not a pass."""
    import scipy.sparse.linalg as spla

    spec, _, _, y, _, _, xi, _ = problem

    def unconverged(op, k, **kwargs):
        raise spla.ArpackNoConvergence("no convergence", np.array(partial), np.zeros((op.shape[0], len(partial))))

    monkeypatch.setattr(spla, "eigsh", unconverged)
    result = ap.solve_saddle(spec, xi, y, method="krylov", raise_on_failure=False)
    if expected is None:
        assert np.isnan(result.min_hessian_eigenvalue) and not result.converged
    else:
        assert result.min_hessian_eigenvalue == expected and result.converged


def test_a_solve_whose_every_trial_fails_stops_and_says_so(monkeypatch, problem):
    import attnpaths._src.saddle as saddle_module

    spec, _, _, y, _, _, xi, _ = problem
    real_trial = saddle_module._trial

    def failing(*args):
        _, Us, f = real_trial(*args)
        return jnp.nan, Us, f

    monkeypatch.setattr(saddle_module, "_trial", failing)
    with pytest.raises(RuntimeError, match=r"after \d+ iterations \(the trust region collapsed: no step decreases S\)"):
        ap.solve_saddle(spec, xi, y)


def test_solve_widths_goes_largest_first_with_warm_starts(monkeypatch, problem):
    import attnpaths._src.saddle as saddle_module

    spec, _, _, y, _, _, xi, _ = problem
    real, calls = saddle_module.solve_saddle, []

    def spy(spec, data, init=None, **kwargs):
        result = real(spec, data, init=init, **kwargs)
        calls.append((spec.widths[0], init, result))
        return result

    monkeypatch.setattr(saddle_module, "solve_saddle", spy)
    saddles = ap.solve_widths(spec, xi, y, [3.0, 30.0, 10.0])
    assert [w for w, _, _ in calls] == [30.0, 10.0, 3.0]
    assert calls[0][1] is None
    for (_, init, _), (_, _, previous) in zip(calls[1:], calls[:-1]):
        assert all(np.array_equal(a, b) for a, b in zip(init, previous.U))
    assert [s.spec.widths[0] for s in saddles] == [3.0, 30.0, 10.0]
    assert len(ap.solve_widths(spec, xi, y, [5.0])) == 1


@pytest.mark.parametrize("route", ["example", "gram"])
def test_krylov_preconditioner_is_the_dense_hessian_where_it_claims(route):
    """At a random U (three layers): the preconditioner's level-1 diagonal is the dense whitened Hessian's
    diagonal there, its block of the levels above and their coupling to level 1 are the Hessian's entries, and
    `Preconditioner.solve` inverts F F^T with F^-1, F^-T its `inverse_factor`s."""
    from attnpaths._src.krylov import _preconditioner_parts, preconditioner
    from attnpaths._src.routes import training_data
    from attnpaths._src.saddle import _model

    spec, xi, y = _three_layer_problem()
    rng = np.random.default_rng(13)
    Us = [jnp.asarray(random_spd(n, rng)) for n in spec.level_sizes]
    data = training_data(spec, xi, y, route)
    dense = _model(Us, data, spec.hyper(), spec.heads, True, True)
    f = _model(Us, data, spec.hyper(), spec.heads, False, False).factors
    H = np.asarray(dense.hess)
    n1 = spec.level_sizes[0] * (spec.level_sizes[0] + 1) // 2
    d1, columns, C_1 = _preconditioner_parts(dense.Ls, f, spec.hyper(), spec.heads)
    np.testing.assert_allclose(d1, np.diag(H)[:n1], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(columns, H[n1:], rtol=1e-9, atol=1e-12 * np.max(np.abs(H)))
    # level 1's entropic block is X -> (C_1 X + X C_1) / 2: the dense Hessian's level-1 block without the energy's
    from attnpaths._src.action import energy_hessian, whiten_factors
    from attnpaths._src.saddle import _symmetric_block

    energy_block = _symmetric_block(energy_hessian(whiten_factors(f, dense.Ls[0]), spec.variances[0]),
                                    1.0 / np.sqrt(2.0)) / max(spec.widths)
    k = spec.level_sizes[0]
    rows, cols = np.triu_indices(k)
    for j in range(n1):
        X = np.zeros((k, k))
        X[rows[j], cols[j]] = X[cols[j], rows[j]] = 1.0 if rows[j] == cols[j] else 1.0 / np.sqrt(2.0)
        Y = 0.5 * (C_1 @ X + X @ C_1)
        packed = Y[rows, cols] * np.where(rows == cols, 1.0, np.sqrt(2.0))
        np.testing.assert_allclose(packed, H[:n1, j] - energy_block[:, j], rtol=1e-9,
                                   atol=1e-11 * np.max(np.abs(H)))
    C = preconditioner(dense.Ls, f, spec.hyper(), spec.heads)
    n = H.shape[0]
    F_inv = np.stack([C.inverse_factor(e, transpose=False) for e in np.eye(n)], axis=1)
    F_inv_T = np.stack([C.inverse_factor(e, transpose=True) for e in np.eye(n)], axis=1)
    np.testing.assert_allclose(F_inv_T, F_inv.T, atol=1e-12)
    C_inv = np.stack([C.solve(e) for e in np.eye(n)], axis=1)
    np.testing.assert_allclose(C_inv, F_inv.T @ F_inv, rtol=1e-10, atol=1e-12)
    assert np.linalg.eigvalsh(C_inv)[0] > 0
    # C itself, from the Hessian's entries as documented: scaled so that D has mean 1, D = |diagonal| floored,
    # B and A exact, A's Schur complement A - B^T D^-1 B with its eigenvalues made positive the same way
    from attnpaths._src.krylov import _FLOOR

    scale = np.mean(np.abs(np.diag(H)[:n1]))
    D = np.maximum(np.abs(np.diag(H)[:n1]) / scale, _FLOOR)
    B, A = H[:n1, n1:] / scale, H[n1:, n1:] / scale
    lam, V = np.linalg.eigh(A - B.T @ (B / D[:, None]))
    schur = (V * np.maximum(np.abs(lam), _FLOOR)) @ V.T
    expected = np.block([[np.diag(D), B], [B.T, schur + B.T @ (B / D[:, None])]])
    np.testing.assert_allclose(np.linalg.inv(C_inv), expected, rtol=1e-8, atol=1e-10 * np.max(np.abs(expected)))


def test_rotate_packed_is_the_congruence_and_orthogonal():
    """rotate_packed(Q, x) is pack(Q^T X Q) (by `_unpack_scaled` / `_pack_scaled`), for one vector and a batch;
    with Q orthogonal its matrix R is orthogonal and rotate_packed(Q^T, .) is R^T."""
    from attnpaths._src.whitened import _pack_scaled, _unpack_scaled, rotate_packed

    rng = np.random.default_rng(21)
    n = 5
    m = n * (n + 1) // 2
    G = rng.normal(size=(n, n))
    x = jnp.asarray(rng.normal(size=(3, m)))
    want = np.stack([_pack_scaled(G.T @ _unpack_scaled(r, [n])[0] @ G) for r in x])
    np.testing.assert_allclose(rotate_packed(jnp.asarray(G), x), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rotate_packed(jnp.asarray(G), x[1]), want[1], rtol=1e-12, atol=1e-12)
    Q = jnp.asarray(np.linalg.qr(G)[0])
    R = np.asarray(rotate_packed(Q, jnp.eye(m))).T  # column j = R e_j
    np.testing.assert_allclose(R.T @ R, np.eye(m), atol=1e-12)
    np.testing.assert_allclose(np.asarray(rotate_packed(Q.T, jnp.eye(m))).T, R.T, atol=1e-12)


@pytest.mark.parametrize("from_W", [True, False])
def test_nearest_kronecker_is_the_leading_singular_pair(from_W):
    """nearest_kronecker's A (x) B, from W or from M = W^T W, against the leading singular pair of M rearranged as
    (H^2, N0^2) (Van Loan and Pitsianis) after many updates, the power method's iterates after a few, and exact
    after one update when M is a Kronecker product."""
    from attnpaths._src.action import with_M
    from attnpaths._src.krylov import nearest_kronecker
    from attnpaths._src.routes import EnergyFactors

    rng = np.random.default_rng(22)
    P, H, n0 = 30, 4, 3
    f = EnergyFactors(jnp.asarray(0.0), jnp.asarray(rng.normal(size=(H, n0))), jnp.zeros((H, H)), None,
                      jnp.asarray(rng.normal(size=(P, H, n0))))
    M = np.asarray(with_M(f).M)
    u, sv, vt = np.linalg.svd(np.transpose(M, (0, 2, 1, 3)).reshape(H * H, n0 * n0))
    want = np.kron((sv[0] * u[:, 0]).reshape(H, H), vt[0].reshape(n0, n0))
    f = f if from_W else with_M(f)
    A, B = nearest_kronecker(f, 40)
    assert np.linalg.norm(B) == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(np.kron(A, B), want, rtol=0, atol=1e-10 * np.abs(want).max())
    # a few updates: the power method on the rearranged M from A = I, step for step
    R = np.transpose(M, (0, 2, 1, 3)).reshape(H * H, n0 * n0)
    b = R.T @ np.eye(H).ravel()
    for iterations in (1, 2, 3):
        A, B = nearest_kronecker(f, iterations)
        np.testing.assert_allclose(B, (b / np.linalg.norm(b)).reshape(n0, n0), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(A, (R @ b / np.linalg.norm(b)).reshape(H, H), rtol=1e-10)
        b = R.T @ (R @ (b / np.linalg.norm(b)))
    A0, B0 = random_spd(H, rng), random_spd(n0, rng)
    exact = jnp.asarray(np.kron(A0, B0).reshape(H, n0, H, n0))  # M[c, i, a, j] = A0_ca B0_ij
    A, B = nearest_kronecker(EnergyFactors(f.E, f.v, f.trace_M, exact, None), 1)
    np.testing.assert_allclose(np.kron(A, B), np.kron(A0, B0), rtol=1e-12, atol=1e-12 * np.abs(A0).max())


@pytest.mark.parametrize("route", ["example", "gram"])
def test_kronecker_preconditioner_is_the_documented_form(route):
    """At a random U (three layers), the Kronecker form of the preconditioner: level 1's block is diagonal in the
    rotated coordinates pack(Q^T X Q), with the diagonal there of K = the entropy's (C X + X C) / 2 plus the
    energy's Hessian-vector product with the whitened M replaced by A (x) B (by `energy_hvp`, formed densely); the
    levels above keep the Hessian's exact entries; `solve` inverts F F^T with F^-1, F^-T its `inverse_factor`s."""
    from attnpaths._src.action import energy_hvp, whiten_factors
    from attnpaths._src.krylov import _FLOOR, KRONECKER_ITERATIONS, nearest_kronecker, preconditioner
    from attnpaths._src.routes import EnergyFactors, training_data
    from attnpaths._src.saddle import _model
    from attnpaths._src.whitened import _pack_scaled, _unpack_scaled, rotate_packed

    spec, xi, y = _three_layer_problem()
    rng = np.random.default_rng(23)
    Us = [jnp.asarray(random_spd(n, rng)) for n in spec.level_sizes]
    data = training_data(spec, xi, y, route)
    hyper = spec.hyper()
    dense = _model(Us, data, hyper, spec.heads, True, True)
    f = _model(Us, data, hyper, spec.heads, False, False).factors
    Hs = np.asarray(dense.hess)
    k, n = spec.level_sizes[0], Hs.shape[0]
    n1 = k * (k + 1) // 2
    C = preconditioner(dense.Ls, f, hyper, spec.heads, kronecker=True)
    fw = whiten_factors(f, dense.Ls[0])
    A, B = nearest_kronecker(fw, KRONECKER_ITERATIONS)
    Q = np.linalg.eigh(np.asarray(A))[1]
    np.testing.assert_allclose(np.abs(np.sum(C.Q * Q, axis=0)), 1.0, rtol=1e-9)  # the same eigenvectors
    kron = EnergyFactors(fw.E, fw.v, fw.trace_M, jnp.einsum("ca,ij->ciaj", A, B), None)
    s0, norm = spec.variances[0], max(spec.widths)
    # the entropy's block is the dense Hessian's level-1 block without the energy's (as in the test above)
    entropic = Hs[:n1, :n1] - np.stack([_pack_scaled(energy_hvp(fw, _unpack_scaled(e, [k])[0], s0)) / norm
                                        for e in jnp.eye(n1)], axis=1)
    K = entropic + np.stack([_pack_scaled(energy_hvp(kron, _unpack_scaled(e, [k])[0], s0)) / norm
                             for e in jnp.eye(n1)], axis=1)
    R = np.asarray(rotate_packed(jnp.asarray(C.Q), jnp.eye(n1))).T
    kd = np.diag(R @ K @ R.T)
    scale = np.mean(np.abs(kd))
    np.testing.assert_allclose(C.D, np.maximum(np.abs(kd) / scale, _FLOOR), rtol=1e-8)
    T = np.eye(n)
    T[:n1, :n1] = R
    Bc, Au = (R @ Hs[:n1, n1:]) / scale, Hs[n1:, n1:] / scale
    lam, V = np.linalg.eigh(Au - Bc.T @ (Bc / C.D[:, None]))
    schur = (V * np.maximum(np.abs(lam), _FLOOR)) @ V.T
    expected = T.T @ np.block([[np.diag(C.D), Bc], [Bc.T, schur + Bc.T @ (Bc / C.D[:, None])]]) @ T
    F_inv = np.stack([C.inverse_factor(e, transpose=False) for e in np.eye(n)], axis=1)
    F_inv_T = np.stack([C.inverse_factor(e, transpose=True) for e in np.eye(n)], axis=1)
    np.testing.assert_allclose(F_inv_T, F_inv.T, atol=1e-12)
    C_inv = np.stack([C.solve(e) for e in np.eye(n)], axis=1)
    np.testing.assert_allclose(C_inv, F_inv.T @ F_inv, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.linalg.inv(C_inv), expected, rtol=1e-8, atol=1e-10 * np.max(np.abs(expected)))


@pytest.mark.parametrize("P, H, n0", [(7, 9, 3), (11, 17, 2), (5, 2, 4), (6, 1, 3)])
def test_energy_hessian_diagonal_from_W_is_the_quadratic_form(P, H, n0):
    """energy_hessian_diagonal from W (its blocks in uneven chunks of heads, the upper block triangle only) and
    from M: the energy's quadratic form on E_cc and on E_cd + E_dc (4 x the entry), by energy_hvp."""
    from attnpaths._src.action import energy_hessian_diagonal, energy_hvp, with_M
    from attnpaths._src.routes import EnergyFactors

    rng = np.random.default_rng(P * H)
    W, v = jnp.asarray(rng.normal(size=(P, H, n0))), jnp.asarray(rng.normal(size=(H, n0)))
    f = EnergyFactors(jnp.asarray(0.0), v, jnp.zeros((H, H)), None, W)
    got, from_M = np.asarray(energy_hessian_diagonal(f, 1.3)), np.asarray(energy_hessian_diagonal(with_M(f), 1.3))
    want = np.zeros((H, H))
    for c in range(H):
        for d in range(H):
            Z = np.zeros((H, H))
            Z[c, d] += 1.0
            Z[d, c] += 1.0
            want[c, d] = float(np.vdot(Z, energy_hvp(f, jnp.asarray(Z), 1.3))) / 4.0
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())
    np.testing.assert_allclose(from_M, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())


@pytest.mark.parametrize("kronecker", [False, True])
@pytest.mark.parametrize("heads", [(3,), (2, 2)])
def test_krylov_hvp_is_the_dense_hessian_with_one_level_or_more(heads, kronecker):
    """At a random U, the Krylov method's products (with krylov_parts' Curvature, as the solver makes them) are the
    dense whitened Hessian's: with one level U_1 also enters U_a, and the closed-form level-1 block would miss it."""
    from attnpaths._src.krylov import krylov_parts
    from attnpaths._src.routes import training_data
    from attnpaths._src.saddle import _hvp, _model

    spec, attention, x, y, *_ = random_problem(heads, n_train=10, n0=3, widths=4.0, seed=3)
    data = training_data(spec, ap.path_features(spec, attention, x), y, "example")
    rng = np.random.default_rng(5)
    Us = [jnp.asarray(random_spd(n, rng)) for n in spec.level_sizes]
    hyper = spec.hyper()
    dense = _model(Us, data, hyper, spec.heads, True, True)
    f = _model(Us, data, hyper, spec.heads, False, False).factors
    _, curvature, operands = krylov_parts(dense.Ls, f, hyper, spec.heads, kronecker)
    H = np.asarray(dense.hess)
    for w in rng.normal(size=(3, H.shape[0])):
        np.testing.assert_allclose(_hvp(dense.Ls, f, hyper, spec.heads, jnp.asarray(w), curvature, operands), H @ w,
                                   rtol=1e-8, atol=1e-10 * np.max(np.abs(H)))


def test_krylov_solver_switches_to_the_kronecker_form_after_its_first_interior_step(monkeypatch):
    """A cold Krylov solve builds the diagonal preconditioner until a Steihaug step ends inside the trust region,
    and the Kronecker form at every accepted point after that; both are used here, and it converges."""
    from attnpaths._src import saddle

    events = []
    real_parts, real_step = saddle.krylov_parts, saddle.steihaug_step

    def parts(*args):
        events.append(("parts", bool(args[4]) if len(args) > 4 else False))
        return real_parts(*args)

    def step(*args, **kwargs):
        out = real_step(*args, **kwargs)
        events.append(("step", out[2]))
        return out

    monkeypatch.setattr(saddle, "krylov_parts", parts)
    monkeypatch.setattr(saddle, "steihaug_step", step)
    spec, attention, x, y, *_ = random_problem((2, 2), n_train=50, n0=3, widths=4.0, temperature=0.05, seed=3)
    result = ap.solve_saddle(spec, ap.path_features(spec, attention, x), y, method="krylov")
    assert result.converged
    interior_seen = False
    for kind, value in events:
        if kind == "step":
            interior_seen = interior_seen or not value
        else:
            assert value == interior_seen
    forms = [value for kind, value in events if kind == "parts"]
    assert forms[0] is False and forms[-1] is True


def test_preconditioned_steihaug_step_uses_the_preconditioner_norm():
    """With C = B (positive definite) the preconditioned CG step is Newton's step after one product when it fits;
    otherwise it stops on the boundary of ||p||_C = radius, below the model value at the scaled Cauchy point."""
    from attnpaths._src.trust_region import steihaug_step

    rng = np.random.default_rng(14)
    A = rng.normal(size=(12, 12))
    B = A @ A.T + 12 * np.eye(12)
    g = 1e-3 * rng.normal(size=12)
    p, predicted, boundary, products = steihaug_step(g, lambda d: B @ d, 10.0, 50,
                                                     precondition=lambda r: np.linalg.solve(B, r))
    assert products == 1 and not boundary
    np.testing.assert_allclose(p, -np.linalg.solve(B, g), rtol=1e-10)
    C = np.diag(rng.uniform(20.0, 50.0, size=12))
    g = rng.normal(size=12)
    radius = 3.0 * np.linalg.norm(np.linalg.solve(B, g))  # Newton's step fits in the Euclidean ball, not in C's
    p, predicted, boundary, products = steihaug_step(g, lambda d: B @ d, radius, 50,
                                                     precondition=lambda r: np.linalg.solve(C, r))
    assert boundary and np.sqrt(p @ C @ p) == pytest.approx(radius, rel=1e-9)
    assert predicted == pytest.approx(-(g @ p + 0.5 * p @ B @ p), rel=1e-12)
    cauchy = -np.linalg.solve(C, g)
    cauchy *= radius / np.sqrt(cauchy @ C @ cauchy)
    assert -predicted <= g @ cauchy + 0.5 * cauchy @ B @ cauchy + 1e-12


@pytest.mark.parametrize("spectrum", ["spread", "indefinite", "small"])
def test_lowest_eigenvalue_equals_lapack(spectrum, monkeypatch):
    """The certificate's lowest eigenvalue: Lanczos on B^-1 for a positive definite B of n >= 64 (a spread
    spectrum, 1e-4 ... 40, like a minimum's packed Hessian), LAPACK otherwise (indefinite, or n < 64, where
    ARPACK is not called at all), equal to eigvalsh either way."""
    import scipy.sparse.linalg

    from attnpaths._src.trust_region import lowest_eigenvalue

    if spectrum != "spread":
        def no_lanczos(*args, **kwargs):
            raise AssertionError("Lanczos was called where LAPACK is the route")

        monkeypatch.setattr(scipy.sparse.linalg, "eigsh", no_lanczos)

    rng = np.random.default_rng(3)
    n = 12 if spectrum == "small" else 150
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    lam = {"spread": np.geomspace(1e-4, 40.0, n), "indefinite": np.linspace(-2.0, 40.0, n),
           "small": np.linspace(0.5, 3.0, n)}[spectrum]
    B = Q @ np.diag(lam) @ Q.T
    B = 0.5 * (B + B.T)
    assert lowest_eigenvalue(B) == pytest.approx(np.linalg.eigvalsh(B)[0], rel=1e-10)


def test_lanczos_results_do_not_depend_on_earlier_calls():
    """ARPACK draws its start vector from a generator whose state persists in the process, so without a fixed
    start the certificate and the indefinite step's bound change in the last bits with whatever ran before (a
    resumed run then differed from an uninterrupted one). Both Lanczos routes and the Krylov certificate are
    bitwise the same on a repeated call."""
    from attnpaths._src import krylov
    from attnpaths._src.trust_region import lowest_eigenpair, lowest_eigenvalue

    rng = np.random.default_rng(5)
    n = 150
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    B = Q @ np.diag(np.geomspace(1e-3, 40.0, n)) @ Q.T
    B = 0.5 * (B + B.T)
    C = Q @ np.diag(np.linspace(-2.0, 40.0, n)) @ Q.T
    C = 0.5 * (C + C.T)
    first = (lowest_eigenvalue(B), lowest_eigenpair(C))
    assert first[1] is not None and first[1][0] == pytest.approx(-2.0, rel=1e-8)
    second = (lowest_eigenvalue(B), lowest_eigenpair(C))
    assert first[0] == second[0]
    assert first[1][0] == second[1][0] and np.array_equal(first[1][1], second[1][1])
    identity = krylov.Preconditioner(np.ones(100), np.zeros((100, n - 100)), np.eye(n - 100), np.ones(n - 100))
    krylov_first = krylov.smallest_eigenvalue(lambda v: B @ v, identity)
    assert krylov_first == krylov.smallest_eigenvalue(lambda v: B @ v, identity)
    assert krylov_first[0] == pytest.approx(1e-3, rel=1e-4)


@pytest.mark.parametrize("kind", ["interior", "boundary", "indefinite"])
def test_dense_step_uses_the_symmetric_part_of_B(kind):
    """A Hessian assembled in floating point is symmetric only up to rounding: the step is that of (B + B^T)/2
    (a Cholesky factorisation would read one triangle only)."""
    from attnpaths._src.trust_region import dense_step

    g, B, radius = _large_subproblem(kind)
    skew = 0.05 * np.triu(np.random.default_rng(5).normal(size=B.shape), 1)
    p, predicted, boundary = dense_step(g, B + skew - skew.T, radius)
    q, predicted_sym, boundary_sym = dense_step(g, B, radius)
    np.testing.assert_allclose(p, q, rtol=1e-9, atol=1e-12)
    assert (predicted, boundary) == (pytest.approx(predicted_sym, rel=1e-10), boundary_sym)


def test_indefinite_step_starts_the_secular_iteration_past_the_pole(monkeypatch):
    """When B is indefinite, the secular iteration starts from the lowest eigenpair's bound
    mu >= |g.u| / radius - lambda_min, not at the pole -lambda_min: fewer factorisations for the same step."""
    import attnpaths._src.trust_region as trust_region

    g, B, radius = _large_subproblem("indefinite")
    real, counts = trust_region._cholesky_shift, []
    monkeypatch.setattr(trust_region, "subspace_shift", lambda *args: 0.0)  # the bound is the Krylov start's fallback

    def counting(*args):
        out = real(*args)
        counts.append(out[2])
        return out

    monkeypatch.setattr(trust_region, "_cholesky_shift", counting)
    p, _, _ = trust_region.dense_step(g, B, radius)
    lowest = np.linalg.eigvalsh(B)[0]
    pole = -lowest + 1e-6 * abs(lowest)
    from_pole = real(B, g, radius, pole, trust_region._cholesky(trust_region._shifted(B, pole)))
    np.testing.assert_allclose(p, from_pole[0] * radius / np.linalg.norm(from_pole[0]), rtol=1e-8)
    assert counts and counts[0] < from_pole[2], (counts, from_pole[2])


def _exact_shift(g, B, radius):
    lam, Q = np.linalg.eigh(B)
    scale = max(1.0, float(np.max(np.abs(lam))))
    lo = max(0.0, -lam[0]) * (1 + 1e-12) + 1e-14 * scale
    from attnpaths._src.trust_region import _boundary_shift

    return _boundary_shift(lam, Q.T @ g, radius, lo, lo + np.linalg.norm(g) / radius + scale)[0]


@pytest.mark.parametrize("kind", ["boundary", "indefinite"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_subspace_shift_rises_to_the_exact_shift(kind, seed):
    """The Krylov subspace's shift (Gould, Lucidi, Roma and Toint 1999) approaches the secular equation's root
    from below as the space grows, is within 1e-9 of it when the iteration stops, and equals it (to rounding)
    on the whole space."""
    from attnpaths._src.trust_region import subspace_shift

    g, B, radius = _large_subproblem(kind, seed=seed)
    exact = _exact_shift(g, B, radius)
    few = subspace_shift(B, g, radius, max_steps=5)
    assert few < exact * (1 - 1e-11)
    counted = _CountingMatrix(B)
    stopped = subspace_shift(counted, g, radius)
    assert counted.products <= 20  # it stops once the estimate settles (10-15 products here), not at 80
    assert few <= stopped <= exact * (1 + 1e-11)
    assert stopped == pytest.approx(exact, rel=1e-9)
    assert subspace_shift(B, g, radius, max_steps=len(g)) == pytest.approx(exact, rel=1e-10)
    if kind == "boundary":
        # B positive definite and the Newton step just inside: every subspace's Newton step (a CG iterate, whose
        # norm grows with the space) is inside too
        assert subspace_shift(B, g, 1.01 * np.linalg.norm(np.linalg.solve(B, g))) == 0.0
        small = 0.04 * B  # every eigenvalue below 1: the interior test does not lean on the spectrum's scale
        assert subspace_shift(small, g, 1.01 * np.linalg.norm(np.linalg.solve(small, g))) == 0.0
    else:  # B indefinite: a positive shift for any radius, also one past the norm of -B^-1 g (not a minimum); with
        # many negative eigenvalues and with one
        lam, Q = np.linalg.eigh(B)
        one = B + Q[:, 1:] @ np.diag(np.maximum(lam[1:], 0.5) - lam[1:]) @ Q[:, 1:].T
        for indefinite in (B, one):
            assert np.linalg.norm(np.linalg.solve(indefinite, g)) < 100.0
            assert subspace_shift(indefinite, g, 100.0) == pytest.approx(_exact_shift(g, indefinite, 100.0), rel=1e-9)


class _CountingMatrix:
    """B for `B @ v` only, counting the products."""

    def __init__(self, B):
        self.B, self.products = B, 0

    def __matmul__(self, v):
        self.products += 1
        return self.B @ v


def test_dense_step_at_a_zero_gradient_of_an_indefinite_b_goes_along_the_lowest_eigenvector():
    """g = 0 with B indefinite (a saddle point of the model): the hard case, the step of length radius along the
    lowest eigenvector, by the eigen-decomposition (no Krylov space or secular equation exists for g = 0)."""
    from attnpaths._src.trust_region import dense_step

    _, B, radius = _large_subproblem("indefinite")
    lam, Q = np.linalg.eigh(B)
    p, predicted, boundary = dense_step(np.zeros(len(B)), B, radius)
    assert boundary and np.all(np.isfinite(p))
    assert abs(Q[:, 0] @ p) == pytest.approx(radius, rel=1e-10)
    assert predicted == pytest.approx(-0.5 * lam[0] * radius ** 2, rel=1e-10)


def test_subspace_shift_stops_on_an_invariant_subspace():
    """When g lies in an invariant subspace of B (here three eigenvectors), Lanczos ends there: the shift is exact
    after three products, not an estimate from noise directions."""
    from attnpaths._src.trust_region import subspace_shift

    rng = np.random.default_rng(3)
    n = 96
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    lam = np.linspace(0.5, 20.0, n)
    B = Q @ np.diag(lam) @ Q.T
    g = Q[:, [2, 40, 90]] @ np.array([1.0, -2.0, 0.5])

    radius = 0.05
    counted = _CountingMatrix(B)
    mu = subspace_shift(counted, g, radius)
    assert counted.products == 3
    assert mu == pytest.approx(_exact_shift(g, B, radius), rel=1e-12)


@pytest.mark.parametrize("kind", ["boundary", "indefinite", "small shift"])
def test_boundary_step_starts_from_the_subspace_shift(monkeypatch, kind):
    """From the Krylov start a boundary step takes one factorisation of B + mu I after B's own, and no Lanczos
    eigenvalue; the start is not trusted: placed past the root, or left of the
    pole, the step falls back to its bounds and is the same."""
    import attnpaths._src.trust_region as trust_region

    g, B, radius = _large_subproblem("boundary" if kind == "small shift" else kind)
    if kind == "small shift":  # just inside the Newton step: mu = 0.13
        radius = 0.9 * np.linalg.norm(np.linalg.solve(B, g))
    reference = trust_region.eigen_step(g, B, radius)
    real_cholesky, real_pair = trust_region._cholesky, trust_region.lowest_eigenpair
    counts = {"factorisations": 0, "lanczos": 0}

    def counting(*args, **kwargs):
        counts["factorisations"] += 1
        return real_cholesky(*args, **kwargs)

    def pair(*args, **kwargs):
        counts["lanczos"] += 1
        return real_pair(*args, **kwargs)

    monkeypatch.setattr(trust_region, "_cholesky", counting)
    monkeypatch.setattr(trust_region, "lowest_eigenpair", pair)
    exact = _exact_shift(g, B, radius)
    pole = -np.linalg.eigvalsh(B)[0]
    starts = {"krylov": None, "past the root": 1.5 * exact, "left of the pole": pole - 0.5 if pole > 0 else None}
    for name, start in starts.items():
        if name != "krylov":
            if start is None:
                continue
            monkeypatch.setattr(trust_region, "subspace_shift", lambda *args, mu=start: mu)
        counts.update(factorisations=0, lanczos=0)
        p, predicted, boundary = trust_region.dense_step(g, B, radius)
        assert boundary
        np.testing.assert_allclose(p, reference[0], rtol=1e-8, atol=1e-10 * np.linalg.norm(p))
        assert predicted == pytest.approx(reference[1], rel=1e-10)
        if name == "krylov":
            assert counts == {"factorisations": 2, "lanczos": 0}, counts
        else:  # the fallback ran: from Lanczos's bound when B is indefinite, from mu = 0 when it is not
            assert counts["lanczos"] == (kind == "indefinite"), (name, counts)
            assert counts["factorisations"] >= 3, (name, counts)


@pytest.mark.parametrize("P, H, n0", [(7, 9, 3), (11, 6, 2), (5, 2, 4), (6, 1, 3), (4, 3, 1)])
def test_energy_hessian_pairs_is_the_symmetrised_hessian(P, H, n0):
    """energy_hessian_pairs from W (M's blocks over the upper block triangle in uneven chunks, the v terms as a
    Gram in P) and from M: every entry against the H^4 Hessian of energy_hessian symmetrised by brute force over
    the two orders of each pair, and its quadratic form against energy_hvp."""
    from attnpaths._src.action import energy_hessian, energy_hessian_pairs, energy_hvp, with_M
    from attnpaths._src.routes import EnergyFactors

    rng = np.random.default_rng(P + 10 * H + 100 * n0)
    W, v = jnp.asarray(rng.normal(size=(P, H, n0))), jnp.asarray(rng.normal(size=(H, n0)))
    f = EnergyFactors(jnp.asarray(0.0), v, jnp.zeros((H, H)), None, W)
    h4 = np.asarray(energy_hessian(with_M(f), 1.3))
    rows, cols = np.triu_indices(H)
    want = np.empty((rows.size, rows.size))
    for k, (c, d) in enumerate(zip(rows, cols)):
        for m, (a, b) in enumerate(zip(rows, cols)):
            want[k, m] = 0.25 * (h4[c, d, a, b] + h4[d, c, a, b] + h4[c, d, b, a] + h4[d, c, b, a])
    scale = np.max(np.abs(want))
    for factors in (f, with_M(f)):
        got = np.asarray(energy_hessian_pairs(factors, 1.3))
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12 * scale)
    # the quadratic form of a symmetric direction Z: sum over pairs with weight 2 off the diagonal
    Z = rng.normal(size=(H, H))
    Z = Z + Z.T
    z = Z[rows, cols] * np.where(rows == cols, 1.0, 2.0)
    form = float(np.sum(np.asarray(energy_hvp(f, jnp.asarray(Z), 1.3)) * Z))
    assert z @ np.asarray(energy_hessian_pairs(f, 1.3)) @ z == pytest.approx(form, rel=1e-10, abs=1e-12 * scale)
