"""The example (P x P) and Gram (D x D) routes against each other and against autodiff of the plain formula."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import attnpaths as ap
from attnpaths._src.action import energy_gradient, energy_hessian, energy_hvp, product_operands
from attnpaths._src.order import pack_order, unpack_order
from attnpaths._src.routes import example_data, gram_from_features, training_data
from attnpaths._src.saddle import _model, packed_hessian
from attnpaths._src.statistics import gram_statistics
from conftest import random_problem


def random_spd(n, rng):
    A = rng.normal(size=(n, n))
    return A @ A.T / n + 0.3 * np.eye(n)


def features(P, n0, H, seed=0):
    rng = np.random.default_rng(seed)
    xi = rng.normal(size=(P, n0, H)) / np.sqrt(n0 * H)
    return jnp.asarray(xi), jnp.asarray(np.sign(rng.normal(size=P))), jnp.asarray(random_spd(H, rng))


def plain_energy(xi, y, s0, T):
    return lambda U: ap.energy(ap.renormalized_kernel(0.5 * (U + U.T), xi, xi, s0), y, T)


def route_data(name, xi, y):
    return gram_from_features(xi, y) if name == "gram" else example_data(xi, y)


CASES = [(40, 3, 4, "gram"), (40, 3, 4, "example"), (7, 3, 4, "example"), (7, 3, 4, "gram"),
         (9, 6, 3, "example")]  # P > D, P < D, P < N0 (example route keeps W)


@pytest.mark.parametrize("P, n0, H, route", CASES)
@pytest.mark.parametrize("keep_M", [True, False])
def test_energy_and_derivatives_match_autodiff(P, n0, H, route, keep_M):
    xi, y, U = features(P, n0, H)
    s0, T = 1.7, 0.05
    E = plain_energy(xi, y, s0, T)
    f = route_data(route, xi, y).factors(U, s0, T, keep_M)
    grad = jax.jit(jax.grad(E))(U)
    rel = dict(rtol=1e-10, atol=1e-10 * float(jnp.max(jnp.abs(grad))))
    np.testing.assert_allclose(f.E, jax.jit(E)(U), rtol=1e-11)
    np.testing.assert_allclose(energy_gradient(f, s0), grad, **rel)
    direction = jnp.asarray(random_spd(H, np.random.default_rng(5)) - np.eye(H))
    expected = jax.jit(lambda U, d: jax.jvp(jax.grad(E), (U,), (d,))[1])(U, direction)
    scale = float(jnp.max(jnp.abs(expected)))
    np.testing.assert_allclose(energy_hvp(f, direction, s0), expected, rtol=1e-9, atol=1e-10 * scale)
    np.testing.assert_allclose(energy_hvp(f, direction, s0, product_operands(f)), expected, rtol=1e-9,
                               atol=1e-10 * scale)
    dense = np.einsum("cdab,ab->cd", energy_hessian(f, s0), direction)
    np.testing.assert_allclose(dense, expected, rtol=1e-9, atol=1e-10 * scale)


def test_example_route_padding_changes_nothing():
    xi, y, U = features(37, 3, 4)
    data = example_data(xi, y)
    assert data.xi.shape[0] > 37  # the test exercises padding
    np.testing.assert_allclose(data.energy(U, 1.3, 0.02), plain_energy(xi, y, 1.3, 0.02)(U), rtol=1e-12)


@pytest.mark.parametrize("U_kind", ["spd", "singular"])
def test_predictor_routes_agree(U_kind):
    xi, y, U = features(60, 3, 4, seed=2)
    xit = features(13, 3, 4, seed=3)[0]
    spec = ap.NetworkSpec(heads=(2, 2), temperature=0.03, variances=[1.4, 1, 1, 1])
    if U_kind == "singular":  # a path removed from the kernel: U is only positive semi-definite
        U = U.at[1, :].set(0.0).at[:, 1].set(0.0)
    a = ap.predict(spec, xi, y, xit, U, route="example")
    b = ap.predict(spec, xi, y, xit, U, route="gram")
    np.testing.assert_allclose(b.mean, a.mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b.var, a.var, rtol=1e-8, atol=1e-12)
    K = 1.4 * np.einsum("mip,pq,niq->mn", xi, U, xi) + 0.03 * np.eye(60)
    k = 1.4 * np.einsum("mip,pq,niq->mn", xi, U, xit)
    np.testing.assert_allclose(a.mean, k.T @ np.linalg.solve(K, y), rtol=1e-9)


def _preconditioned_lowest(U, data, spec, kronecker):
    """The lowest eigenvalue of F^-1 H F^-T: H the dense whitened Hessian at U, C = F F^T the Krylov
    preconditioner there, diagonal or in its Kronecker form (what the Krylov certificate estimates by Lanczos: a
    solve whose steps were all on the trust region's boundary, or that took none, ends on the diagonal form)."""
    from attnpaths._src.krylov import preconditioner

    Us = [jnp.asarray(u) for u in U]
    dense = _model(Us, data, spec.hyper(), spec.heads, True, True)
    f = _model(Us, data, spec.hyper(), spec.heads, False, False).factors
    C = preconditioner(dense.Ls, f, spec.hyper(), spec.heads, kronecker)
    F_inv = np.stack([C.inverse_factor(e, transpose=False) for e in np.eye(dense.hess.shape[0])], axis=1)
    return np.linalg.eigvalsh(F_inv @ np.asarray(dense.hess) @ F_inv.T)[0]


@pytest.mark.parametrize("method", ["dense", "krylov"])
def test_solver_routes_and_methods_agree(method):
    spec, attention, x, y, *_ = random_problem((2, 2), n_train=50, n0=3, widths=4.0, temperature=0.05, seed=3)
    xi = ap.path_features(spec, attention, x)
    a = ap.solve_saddle(spec, xi, y, route="example", method="dense")
    b = ap.solve_saddle(spec, xi, y, route="gram", method=method)
    assert (a.route, b.route, b.method) == ("example", "gram", method)
    assert a.converged and b.converged
    np.testing.assert_allclose(b.action, a.action, rtol=1e-10)
    for Ua, Ub in zip(a.U, b.U):
        np.testing.assert_allclose(Ub, Ua, rtol=1e-7, atol=1e-9)
    if method == "dense":  # the same packed Hessian; krylov certifies in whitened coordinates instead
        np.testing.assert_allclose(b.min_hessian_eigenvalue, a.min_hessian_eigenvalue, rtol=1e-5)
    else:
        data = training_data(spec, xi, y, route="gram")
        np.testing.assert_allclose(b.min_hessian_eigenvalue, _preconditioned_lowest(b.U, data, spec, True),
                                   rtol=1e-5)
    assert abs(a.U1 - ap.gp_order(spec)[0]).max() > 0.05  # finite width moved U: the agreement is not trivial


def test_certificate_is_the_hessian_of_the_action_in_packed_coordinates():
    """The solver's certificate (closed-form energy Hessian + entropy autodiff, chained) against jax.hessian of
    the plain action in packed coordinates, and the Lanczos eigenvalue against the dense one."""
    spec, attention, x, y, *_ = random_problem((2, 2), n_train=15, n0=3, widths=3.0, temperature=0.1, seed=6)
    xi = ap.path_features(spec, attention, x)
    saddle = ap.solve_saddle(spec, xi, y)
    Us = [jnp.asarray(U) for U in saddle.U]
    hyper, sizes = saddle.spec.hyper(), spec.level_sizes
    reference = jax.jit(jax.hessian(lambda p: ap.action(unpack_order(p, sizes), xi, jnp.asarray(y), hyper,
                                                        spec.heads)))(pack_order(Us))
    mine = packed_hessian(Us, xi, y, hyper, spec.heads)
    np.testing.assert_allclose(mine, reference, rtol=1e-8, atol=1e-10 * float(jnp.max(jnp.abs(reference))))
    lowest = np.linalg.eigvalsh(np.asarray(reference))[0]
    assert saddle.min_hessian_eigenvalue == pytest.approx(lowest, rel=1e-8)
    # krylov certifies by Lanczos on the preconditioned whitened Hessian F^-1 H F^-T (C = F F^T)
    lanczos = ap.solve_saddle(saddle.spec, xi, y, init=saddle.U, method="krylov")
    data = training_data(saddle.spec, xi, y)
    assert lanczos.min_hessian_eigenvalue == pytest.approx(_preconditioned_lowest(lanczos.U, data, spec, False),
                                                                    rel=1e-6)
    assert lanczos.hessian_products > 0
    # the count adds the Steihaug steps' products (at least one per iteration) to the certificate's
    cold = ap.solve_saddle(saddle.spec, xi, y, method="krylov")
    assert lanczos.iterations == 0 and cold.iterations > 0
    assert cold.hessian_products - lanczos.hessian_products >= cold.iterations - 5


def test_gram_statistics_streams_chunks_and_equals_in_memory():
    spec, attention, x, y, *_ = random_problem((2, 3), n_train=23, n0=4, seed=8)
    xi = ap.path_features(spec, attention, x)
    expected = gram_from_features(xi, jnp.asarray(y))
    for chunk in (5, 23, 100):  # a padded last chunk, one chunk, a chunk larger than P
        got = gram_statistics(spec, attention, x, y, chunk_size=chunk)
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-14)
    given = [np.asarray(layer(jnp.asarray(x))) for layer in attention]  # attention arrays instead of heads
    got = gram_statistics(spec, given, x, y, chunk_size=6)
    np.testing.assert_allclose(got.gram, expected.gram, rtol=1e-12, atol=1e-14)


def test_bad_route_inputs():
    spec, attention, x, y, *_ = random_problem((2,), n_train=12, n0=2, temperature=0.0)
    xi = ap.path_features(spec, attention, x)
    with pytest.raises(ValueError, match=r"T = 0 needs a non-singular .* N0 H = 4 < P = 12"):
        ap.solve_saddle(spec, xi, y)
    warm = spec.replace(temperature=0.1)
    with pytest.raises(ValueError, match="route must be one of"):
        ap.solve_saddle(warm, xi, y, route="fast")
    with pytest.raises(ValueError, match="method must be one of"):
        ap.solve_saddle(warm, xi, y, method="newton")
    with pytest.raises(ValueError, match="chunk_size must be an int >= 1; got 0"):
        gram_statistics(warm, attention, x, y, chunk_size=0)
    stats = training_data(warm, xi, y, route="gram")
    with pytest.raises(ValueError, match="route='example' needs ExampleData; got GramStatistics"):
        ap.solve_saddle(warm, stats, route="example")
    with pytest.raises(ValueError, match="y must be None"):
        ap.solve_saddle(warm, stats, y)
    with pytest.raises(ValueError, match="U1 must be symmetric positive semi-definite"):
        ap.predict(warm, xi, y, xi, -np.eye(2))
