"""Path features and kernels against brute-force loops over paths (spec B.1, B.2, B.7)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import attnpaths as ap
from conftest import random_problem


def brute_force_path_inputs(attention_arrays, x, readout):
    """x_pi for every path by explicit matrix products over tokens: (P, N0, H)."""
    P, n0, T = x.shape
    heads = [a.shape[1] for a in attention_arrays]
    out = []
    for path in itertools.product(*[range(h) for h in heads]):  # lower layer outermost
        xs = np.zeros((P, n0))
        for b in range(P):
            last = attention_arrays[-1][b, path[-1]]
            vec = {"mean": last.mean(axis=1), "first": last[:, 0], "last": last[:, -1]}[readout]
            for l in range(len(heads) - 2, -1, -1):
                vec = attention_arrays[l][b, path[l]] @ vec  # [key, query] @ weights over queries
            xs[b] = x[b] @ vec
        out.append(xs)
    return np.stack(out, axis=-1)


def bilinear_attention(heads: ap.BilinearHeads, x):
    """Softmax attention of bilinear heads, written out (spec A.3): for example b and head h,
    Omega[b, h, s, t] = exp(A_st) / sum_s' exp(A_s't) with A_st = beta x_s^T W^(h) x_t (softmax over keys s)."""
    P, _, T = x.shape
    out = np.zeros((P, heads.n_heads, T, T))
    for b, h in itertools.product(range(P), range(heads.n_heads)):
        for t in range(T):
            scores = np.array([heads.beta * x[b, :, s] @ heads.W[h] @ x[b, :, t] for s in range(T)])
            weights = np.exp(scores - scores.max())
            out[b, h, :, t] = weights / weights.sum()
    return out


@pytest.mark.parametrize("heads", [(3,), (2, 2), (2, 1, 3)])
@pytest.mark.parametrize("readout", ["mean", "first", "last"])
def test_path_features_match_brute_force(heads, readout):
    spec, attention, x, *_ = random_problem(heads, readout=readout, scale=3.0)
    arrays = [bilinear_attention(layer, x) for layer in attention]  # from the heads' weights, not the library
    expected = brute_force_path_inputs(arrays, x, readout) / np.sqrt(x.shape[1] * spec.n_paths)
    np.testing.assert_allclose(ap.path_features(spec, attention, x), expected, rtol=1e-12, atol=1e-14)
    # user-computed attention arrays give the same features, and chunking does not change them
    np.testing.assert_allclose(ap.path_features(spec, arrays, x, chunk_size=5), expected, rtol=1e-12, atol=1e-14)


def test_softmax_is_over_keys_and_qk_scaling():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4, 5))
    Q, K = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 3, 4))
    omega = np.asarray(ap.QKHeads(Q, K)(jnp.asarray(x)))
    np.testing.assert_allclose(omega.sum(axis=2), 1.0, rtol=1e-12)  # sums over keys s = 1 for each query t
    b, h, s, t = 1, 1, 2, 3
    scores = np.array([(K[h] @ x[b, :, k]) @ (Q[h] @ x[b, :, t]) / np.sqrt(3) for k in range(5)])
    np.testing.assert_allclose(omega[b, h, s, t], np.exp(scores[s]) / np.exp(scores).sum(), rtol=1e-12)
    W = rng.normal(size=(1, 4, 4))
    hard = np.asarray(ap.BilinearHeads(W, beta=2.0, hardmax=True)(jnp.asarray(x)))
    pre = np.einsum("is,ij,jt->st", x[0], W[0], x[0])
    np.testing.assert_array_equal(hard[0, 0].argmax(axis=0), pre.argmax(axis=0))
    np.testing.assert_allclose(hard.sum(axis=2), 1.0)


def test_kernels_match_loop_over_path_pairs(problem):
    spec, attention, x, y, xt, yt, xi, xit = problem
    rng = np.random.default_rng(3)
    A = rng.normal(size=(spec.n_paths, spec.n_paths))
    U = A @ A.T
    s0 = 0.7
    xa, xb = np.asarray(xi) * np.sqrt(xi.shape[1] * spec.n_paths), np.asarray(xit) * np.sqrt(xi.shape[1] * spec.n_paths)
    H, n0 = spec.n_paths, xi.shape[1]
    C = np.zeros((H, H, xa.shape[0], xb.shape[0]))
    for p, q in itertools.product(range(H), range(H)):
        C[p, q] = s0 / n0 * xa[:, :, p] @ xb[:, :, q].T  # (s0/N0) x_pi . x'_pi'
    np.testing.assert_allclose(ap.path_kernels(xi, xit, s0), C, rtol=1e-12)
    K = sum(U[p, q] * C[p, q] for p in range(H) for q in range(H)) / H
    np.testing.assert_allclose(ap.renormalized_kernel(jnp.asarray(U), xi, xit, s0), K, rtol=1e-10)
    Kd = ap.renormalized_kernel(jnp.asarray(U), xit, xit, s0)
    np.testing.assert_allclose(ap.kernel_diagonal(jnp.asarray(U), xit, s0), np.diag(Kd), rtol=1e-10)
    # GP kernel: prod of variances times the equal-weight sum of same-path kernels
    spec2 = spec.replace(variances=(s0, 2.0, 3.0, 0.5))
    Kgp = 2.0 * 3.0 * 0.5 * sum(C[p, p] for p in range(H)) / H
    np.testing.assert_allclose(ap.gp_kernel(spec2, xi, xit), Kgp, rtol=1e-10)


def test_renormalized_kernel_is_symmetric_psd(problem):
    spec, *_, xi, xit = problem
    rng = np.random.default_rng(5)
    A = rng.normal(size=(spec.n_paths, spec.n_paths))
    K = np.asarray(ap.renormalized_kernel(jnp.asarray(A @ A.T), xi, xi))
    np.testing.assert_allclose(K, K.T, atol=1e-12)
    assert np.linalg.eigvalsh(K).min() > -1e-10


def test_path_labels_order_lower_layer_outermost():
    assert ap.path_labels((2, 3)) == ["1,1", "1,2", "1,3", "2,1", "2,2", "2,3"]


def test_kernels_with_defaults_and_a_non_symmetric_U_match_loop(problem):
    """K_U = s_0 sum U_pq xi_p . xi'_q holds for any U (the transpose matters when U is not symmetric), and
    s_0 defaults to 1 in every kernel function."""
    spec, *_, xi, xit = problem
    U = np.random.default_rng(7).normal(size=(spec.n_paths, spec.n_paths))  # not symmetric
    a, b = np.asarray(xi), np.asarray(xit)
    H = spec.n_paths
    K = sum(U[p, q] * a[:, :, p] @ b[:, :, q].T for p in range(H) for q in range(H))
    np.testing.assert_allclose(ap.renormalized_kernel(U, xi, xit), K, rtol=1e-10)
    C = np.einsum("mip,niq->pqmn", a, b) * H  # (s0/N0) x_p . x'_q with s0 = 1
    np.testing.assert_allclose(ap.path_kernels(xi, xit), C, rtol=1e-12)
    Kd = sum(U[p, q] * np.sum(b[:, :, p] * b[:, :, q], axis=1) for p in range(H) for q in range(H))
    np.testing.assert_allclose(ap.kernel_diagonal(U, xit), Kd, rtol=1e-10)


def test_kernels_inside_jit_check_shapes_and_agree(problem):
    """Called on tracers (inside the user's jit), the kernels check shapes by name and give the eager values."""
    spec, *_, xi, xit = problem
    H = spec.n_paths
    U = jnp.asarray(np.random.default_rng(8).normal(size=(H, H)))
    jitted = jax.jit(lambda U, a, b: (ap.renormalized_kernel(U, a, b, 0.7), ap.kernel_diagonal(U, b, 0.7)))
    K, Kd = jitted(U, xi, xit)
    np.testing.assert_allclose(K, ap.renormalized_kernel(U, xi, xit, 0.7), rtol=1e-12)
    np.testing.assert_allclose(Kd, ap.kernel_diagonal(U, xit, 0.7), rtol=1e-12)
    with pytest.raises(ValueError, match=r"xi_a must have shape \(P, N0, H\)"):
        jitted(U, xi[0], xit)
    with pytest.raises(ValueError, match=rf"xi_b must have shape \(P, N0, H\) with H = {H}; got \(5, 5, {H - 1}\)"):
        jitted(U, xi, xit[..., 1:])
    with pytest.raises(ValueError, match=rf"U1 must have shape \({H}, {H}\)"):
        jitted(U[1:], xi, xit)
