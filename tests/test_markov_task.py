"""The hidden Markov chain task (spec D.1-D.3): data generator, designed heads, networks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import attnpaths
from attnpaths._src.tasks.markov import (
    BOS_STRENGTH,
    MarkovConfig,
    MarkovData,
    MarkovNetwork,
    blank_W,
    different_token_W,
    markov_data,
    markov_dataset,
    markov_head,
    markov_layer,
    markov_network,
    network_names,
    same_token_W,
    uniform_W,
)

DEFAULT = MarkovConfig()


@pytest.fixture(scope="module")
def default_data() -> MarkovData:
    return markov_dataset(DEFAULT, 200, seed=3)


def _noise(data: MarkovData) -> np.ndarray:
    """Noise of the real tokens: features minus the clean state vector. (P, T_tok, F)."""
    F = data.config.n_features
    feats = data.x[:, :F, 1:].transpose(0, 2, 1)
    clean = np.where(data.hidden[..., None] > 0, data.v_plus, data.v_minus)
    return feats - clean


# ---------------------------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------------------------


def test_default_shapes_and_layout(default_data):
    d = default_data
    F, T_seq = 200, 31
    assert d.x.shape == (200, 231, 31) and d.x.dtype == np.float64
    assert d.y.shape == (200,) and d.y.dtype == np.float64
    assert d.hidden.shape == (200, 30) and np.issubdtype(d.hidden.dtype, np.integer)
    assert set(np.unique(d.hidden)) == {-1, 1}
    # BOS: zero features, one-hot e_0.
    np.testing.assert_array_equal(d.x[:, :F, 0], 0.0)
    np.testing.assert_array_equal(d.x[:, F:, 0], np.broadcast_to(np.eye(T_seq)[0], (200, T_seq)))
    # one-hot position block of every token.
    np.testing.assert_array_equal(d.x[:, F:, :], np.broadcast_to(np.eye(T_seq), (200, T_seq, T_seq)))
    # class-sorted and balanced.
    np.testing.assert_array_equal(d.y, np.r_[np.ones(100), -np.ones(100)])
    # state vectors
    np.testing.assert_array_equal(d.v_plus, np.sqrt(2) * np.r_[np.ones(100), np.zeros(100)])
    np.testing.assert_array_equal(d.v_minus, np.sqrt(2) * np.r_[np.zeros(100), np.ones(100)])
    # the real tokens are noisy (no token equals its clean vector).
    assert np.all(np.abs(_noise(d)).max(axis=-1) > 0)


@settings(max_examples=20, deadline=None)
@given(n_tokens=st.integers(1, 8), half_f=st.integers(1, 6), half_p=st.integers(1, 5), seed=st.integers(0, 2**31))
def test_layout_any_size(n_tokens, half_f, half_p, seed):
    cfg = MarkovConfig(n_tokens=n_tokens, n_features=2 * half_f)
    d = markov_dataset(cfg, 2 * half_p, seed)
    F, T_seq = 2 * half_f, n_tokens + 1
    assert cfg.seq_len == T_seq and cfg.input_width == F + T_seq
    assert d.x.shape == (2 * half_p, F + T_seq, T_seq)
    assert d.hidden.shape == (2 * half_p, n_tokens)
    np.testing.assert_array_equal(d.x[:, :F, 0], 0.0)
    np.testing.assert_array_equal(d.x[:, F:, :], np.broadcast_to(np.eye(T_seq), (2 * half_p, T_seq, T_seq)))
    np.testing.assert_array_equal(d.y, np.r_[np.ones(half_p), -np.ones(half_p)])
    assert np.all(np.abs(d.hidden) == 1)
    np.testing.assert_allclose(d.v_plus @ d.v_plus, F)
    assert d.v_plus @ d.v_minus == 0.0


def test_chain_statistics():
    cfg = MarkovConfig(n_tokens=30, n_features=4, p_stay_plus=0.7, p_stay_minus=0.3)
    P = 1000
    d = markov_dataset(cfg, P, seed=11)
    h = d.hidden
    stays = h[:, 1:] == h[:, :-1]
    for rows, p in ((slice(0, P // 2), 0.7), (slice(P // 2, P), 0.3)):
        s = stays[rows]
        tol = 5 * np.sqrt(p * (1 - p) / s.size)
        assert abs(s.mean() - p) < tol, (s.mean(), p)
    # first state +-1 with probability 1/2, and the marginal is balanced in both classes.
    assert abs((h[:, 0] == 1).mean() - 0.5) < 5 * np.sqrt(0.25 / P)
    for rows in (slice(0, P // 2), slice(P // 2, P)):
        assert abs((h[rows] == 1).mean() - 0.5) < 0.05


@pytest.mark.parametrize("strengths", [(1.0, 1.0, 1.0), (1.0, 1.0, 5.0), (0.5, 2.0, 0.0)])
def test_noise_components(strengths):
    s_par, s_perp, s_out = strengths
    cfg = MarkovConfig(n_tokens=10, n_features=20, noise_parallel=s_par, noise_perpendicular=s_perp,
                       noise_out_of_plane=s_out)
    d = markov_dataset(cfg, 2000, seed=5)
    eta = _noise(d).reshape(-1, 20)  # 20000 tokens
    n = eta.shape[0]
    e_par = (d.v_plus + d.v_minus) / np.linalg.norm(d.v_plus + d.v_minus)
    e_perp = (d.v_plus - d.v_minus) / np.linalg.norm(d.v_plus - d.v_minus)
    # orthonormal basis of the out-of-plane complement
    q, _ = np.linalg.qr(np.column_stack([e_par, e_perp, np.eye(20)]))
    rest = q[:, 2:20]
    proj_par, proj_perp, proj_out = eta @ e_par, eta @ e_perp, eta @ rest
    for proj, s in ((proj_par, s_par), (proj_perp, s_perp)):
        var = s**2
        assert abs(proj.var() - var) <= 5 * var * np.sqrt(2 / n) + 1e-12, (proj.var(), var)
        assert abs(proj.mean()) <= 5 * s / np.sqrt(n) + 1e-12
    var_out = proj_out.var(axis=0)
    np.testing.assert_allclose(var_out, s_out**2, rtol=5 * np.sqrt(2 / n), atol=1e-12)
    # components uncorrelated
    comps = [proj_par, proj_perp] + ([proj_out[:, 0]] if s_out > 0 else [])
    c = np.corrcoef(np.column_stack(comps).T)
    off = c[~np.eye(len(c), dtype=bool)]
    assert np.all(np.abs(off) < 5 / np.sqrt(n))


def test_seed_determinism():
    cfg = MarkovConfig(n_tokens=6, n_features=10)
    a, b, c = (markov_dataset(cfg, 8, seed) for seed in (4, 4, 5))
    for name in ("x", "y", "hidden", "v_plus", "v_minus"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.x, c.x)
    assert not np.array_equal(a.hidden, c.hidden)


# ---------------------------------------------------------------------------------------------------------------
# heads
# ---------------------------------------------------------------------------------------------------------------


def test_same_token_matrix_structure():
    cfg = MarkovConfig(n_tokens=5, n_features=6)
    F, T_seq = 6, 6
    W = same_token_W(cfg)
    assert W.shape == (12, 12)
    v_plus = np.sqrt(2) * np.r_[1, 1, 1, 0, 0, 0]
    v_minus = np.sqrt(2) * np.r_[0, 0, 0, 1, 1, 1]
    feat = W[:F, :F]
    assert np.isclose(v_plus @ feat @ v_plus, 1) and np.isclose(v_minus @ feat @ v_minus, 1)
    assert np.isclose(v_plus @ feat @ v_minus, -1)
    pos = W[F:, F:]
    expected = np.zeros((T_seq, T_seq))
    for i in range(1, 5):  # key i, query i + 1
        expected[i, i + 1] = 1.0
    expected[0, 1:] = BOS_STRENGTH
    np.testing.assert_array_equal(pos, expected)
    np.testing.assert_array_equal(W[:F, F:], 0.0)
    np.testing.assert_array_equal(W[F:, :F], 0.0)
    np.testing.assert_array_equal(different_token_W(cfg)[:F, :F], -feat)
    np.testing.assert_array_equal(different_token_W(cfg)[F:, F:], pos)


def _attention(kind, data):
    heads = markov_head(kind, data.config, beta=10.0)
    (omega,) = attnpaths.attention_matrices([heads], data.x)
    return np.asarray(omega)[:, 0]  # (P, key, query)


def test_same_token_head_attends_previous_or_bos(default_data):
    d = default_data
    omega = _attention("same_token", d)
    np.testing.assert_allclose(omega.sum(axis=1), 1.0, atol=1e-12)  # softmax over keys
    h = d.hidden  # h[:, t - 1] is the state of position t
    hits_same, n_same, hits_diff, n_diff = 0, 0, 0, 0
    for t in range(2, d.config.seq_len):
        col = omega[:, :, t]
        top = col.argmax(axis=1)
        same = h[:, t - 1] == h[:, t - 2]
        hits_same += np.sum(top[same] == t - 1)
        n_same += same.sum()
        hits_diff += np.sum(top[~same] == 0)
        n_diff += (~same).sum()
        # when the state is unchanged, the previous token takes most of the weight on average
        assert col[same, t - 1].mean() > 0.9
    assert hits_same / n_same > 0.98
    assert hits_diff / n_diff > 0.9
    # the first real token attends mostly BOS; the BOS query attends uniformly.
    assert np.mean(omega[:, :, 1].argmax(axis=1) == 0) > 0.9
    np.testing.assert_allclose(omega[:, :, 0], 1.0 / d.config.seq_len, atol=1e-12)


def test_different_token_head_attends_changed_previous(default_data):
    d = default_data
    omega = _attention("different_token", d)
    h = d.hidden
    t = 10
    changed = h[:, t - 1] != h[:, t - 2]
    assert np.mean(omega[changed, :, t].argmax(axis=1) == t - 1) > 0.98


@pytest.mark.parametrize("kind,perturbation", [("uniform", 1.0), ("blank", 0.0)])
def test_uniform_attention(default_data, kind, perturbation):
    heads = markov_head(kind, DEFAULT, beta=10.0, perturbation=perturbation, seed=1)
    (omega,) = attnpaths.attention_matrices([heads], default_data.x[:20])
    np.testing.assert_allclose(np.asarray(omega), 1.0 / 31, rtol=0, atol=1e-14)


def test_blank_perturbation_statistics_and_seed():
    cfg = MarkovConfig(n_tokens=30, n_features=200)
    F = 200
    W = blank_W(cfg, 2.0, np.random.default_rng(0))
    np.testing.assert_allclose(W[:F, :F].std(), 2.0 / F, rtol=0.02)
    np.testing.assert_allclose(W[F:, F:].std(), 2.0, rtol=0.1)
    np.testing.assert_allclose(W[:F, F:].std(), 2.0 / np.sqrt(F), rtol=0.05)
    np.testing.assert_allclose(W[F:, :F].std(), 2.0 / np.sqrt(F), rtol=0.05)
    np.testing.assert_array_equal(blank_W(cfg, 2.0, 0), W)  # int seed == default_rng(seed)
    assert not np.array_equal(blank_W(cfg, 2.0, 1), W)
    np.testing.assert_array_equal(blank_W(cfg, 0.0, 0), 0.0)
    # a perturbed blank head is not uniform: the attention depends on content
    heads = markov_head("blank", DEFAULT, beta=10.0, perturbation=1.0, seed=147)
    (omega,) = attnpaths.attention_matrices([heads], markov_dataset(DEFAULT, 4, 0).x)
    assert np.asarray(omega).max() > 0.2


def test_markov_layer_stacks_heads():
    cfg = MarkovConfig(n_tokens=4, n_features=4)
    layer = markov_layer([("same_token", 0.0, 1), "uniform", ("blank", 1.0, 9)], cfg, beta=3.0)
    assert isinstance(layer, attnpaths.BilinearHeads)
    assert layer.W.shape == (3, 9, 9) and layer.beta == 3.0
    np.testing.assert_array_equal(layer.W[0], same_token_W(cfg))
    np.testing.assert_array_equal(layer.W[1], uniform_W(cfg))
    np.testing.assert_array_equal(layer.W[2], blank_W(cfg, 1.0, np.random.default_rng(9)))
    single = markov_head("different_token", cfg, beta=2.0)
    assert single.W.shape == (1, 9, 9) and single.beta == 2.0


# ---------------------------------------------------------------------------------------------------------------
# networks
# ---------------------------------------------------------------------------------------------------------------


def test_four_path_network():
    p = markov_network("4paths")
    assert isinstance(p, MarkovNetwork) and p.name == "4paths"
    assert p.spec.heads == (2, 2) and p.n_paths == 4
    assert p.spec.readout == "last" and p.spec.temperature == 0.01
    assert p.spec.variances == (1.0,) * 4 and p.spec.widths == (10.0,) * 3
    assert [layer.n_heads for layer in p.attention] == [2, 2]
    assert all(layer.beta == 10.0 for layer in p.attention)
    assert p.path_names == ("g", "a1", "d", "a2")
    assert tuple(p.path_names[i] for i in p.display_order) == ("g", "d", "a1", "a2")
    assert p.config == MarkovConfig()
    assert (p.n_train, p.n_test, p.train_seed, p.test_seed) == (100, 1000, 27, 59)
    assert p.widths == (10, 30, 50, 100, 300, 500, 1000)
    l1, l2 = p.attention
    np.testing.assert_array_equal(l1.W[0], same_token_W(p.config))
    np.testing.assert_array_equal(l2.W[0], uniform_W(p.config))
    assert np.abs(l1.W[1]).max() > 0 and np.abs(l2.W[1]).max() > 0
    assert not np.array_equal(l1.W[1], l2.W[1])

    refs = p.gp_references
    assert set(refs) == {"good", "good+denoising"}
    spec_g, att_g, names_g = refs["good"]
    assert spec_g.heads == (1, 1) and names_g == ("g",) and spec_g.readout == "last"
    np.testing.assert_array_equal(att_g[0].W[0], l1.W[0])
    np.testing.assert_array_equal(att_g[1].W[0], l2.W[0])
    spec_gd, att_gd, names_gd = refs["good+denoising"]
    assert spec_gd.heads == (2, 1) and names_gd == ("g", "d") and spec_gd.n_paths == 2
    assert [a.W.shape[0] for a in att_gd] == [2, 1]
    np.testing.assert_array_equal(att_gd[0].W[1], l1.W[1])  # the SAME perturbed blank head
    np.testing.assert_array_equal(att_gd[1].W[0], uniform_W(p.config))

    # the networks are rebuilt identically (fixed head seeds)
    again = markov_network("4paths")
    for a, b in zip(again.attention, p.attention):
        np.testing.assert_array_equal(a.W, b.W)


def test_two_path_network():
    p = markov_network("2paths")
    assert p.spec.heads == (2, 1) and p.n_paths == 2 and p.path_names == ("g", "d")
    assert p.config.noise_out_of_plane == 5.0
    assert p.config.noise_parallel == 1.0 and p.config.noise_perpendicular == 1.0
    l1, l2 = p.attention
    np.testing.assert_array_equal(l1.W[1], 0.0)  # blank with perturbation 0
    np.testing.assert_array_equal(l2.W[0], uniform_W(p.config))
    spec, att, names = p.gp_references["g+d"]
    assert spec.heads == (2, 1) and names == ("g", "d")
    np.testing.assert_array_equal(att[0].W, l1.W)


def test_networks_work_end_to_end():
    assert set(network_names()) == {"4paths", "2paths"}
    p = markov_network("4paths")
    train, test = markov_data(p)
    assert train.x.shape == (100, 231, 31) and test.x.shape == (1000, 231, 31)
    np.testing.assert_array_equal(train.x, markov_dataset(p.config, 100, 27).x)
    np.testing.assert_array_equal(test.y, np.r_[np.ones(500), -np.ones(500)])
    xi = attnpaths.path_features(p.spec, p.attention, train.x)
    assert xi.shape == (100, 231, 4)
    for spec, att, names in p.gp_references.values():
        assert attnpaths.path_features(spec, att, train.x[:10]).shape == (10, 231, len(names))


# ---------------------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,match", [
    (dict(n_tokens=0), "n_tokens"),
    (dict(n_tokens=2.5), "n_tokens"),
    (dict(n_tokens=True), "n_tokens"),
    (dict(n_features=7), "n_features"),
    (dict(n_features=0), "n_features"),
    (dict(p_stay_plus=1.0), "p_stay_plus"),
    (dict(p_stay_plus="a"), "p_stay_plus"),
    (dict(p_stay_minus=0.0), "p_stay_minus"),
    (dict(noise_parallel=-1.0), "noise_parallel"),
    (dict(noise_perpendicular=float("nan")), "noise_perpendicular"),
    (dict(noise_out_of_plane=-0.1), "noise_out_of_plane"),
])
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MarkovConfig(**kwargs)


@pytest.mark.parametrize("call,match", [
    (lambda: markov_dataset(DEFAULT, 3, 0), "n_examples"),
    (lambda: markov_dataset(DEFAULT, 0, 0), "n_examples"),
    (lambda: markov_dataset(DEFAULT, 4, -1), "seed"),
    (lambda: markov_dataset({"n_tokens": 3}, 4, 0), "config"),
    (lambda: markov_head("random", DEFAULT), "same_token.*different_token.*uniform.*blank"),
    (lambda: markov_head("uniform", DEFAULT, beta=float("inf")), "beta"),
    (lambda: markov_head("blank", DEFAULT, perturbation=-1.0), "perturbation"),
    (lambda: blank_W(DEFAULT, 1.0, None), "rng"),
    (lambda: markov_layer([], DEFAULT), "kinds"),
    (lambda: markov_layer(["uniform", ("blank", 1.0, 0, 5)], DEFAULT), "kinds"),
    (lambda: markov_network("3paths"), "4paths"),
    (lambda: markov_data("4paths"), "network must be a MarkovNetwork"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
