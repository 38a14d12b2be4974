"""Extension points: a head type defined here, outside the package, runs through the whole library.

ALiBi-style relative-position attention (scores x_s^T W x_t - m_h |s - t|, softmax over keys) is defined in this
file, registered by name, built from the registry, and taken through path features, the saddle point, the
predictor, the estimator and the exact Gibbs sampler, each compared with a computation that never calls the head
class: NumPy loops over examples, heads and queries. Also: the curated public surface.
"""

from __future__ import annotations

import ast
import json
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import attnpaths as ap
from attnpaths.experiments import EXPERIMENTS, Experiment, Registry, Settings, setting
from attnpaths.experiments.io import write_json_atomic
from attnpaths.experiments.settings import at_least, positive
from test_paths_kernels import brute_force_path_inputs


@dataclass(frozen=True, eq=False)
class ALiBiHeads:
    """Relative-position heads: A_st = x_s^T W_h x_t - m_h |s - t| (key s, query t), softmax over keys."""

    W: np.ndarray  # (H_l, N0, N0)
    slopes: tuple  # (H_l,), m_h >= 0

    @property
    def n_heads(self) -> int:
        return len(self.slopes)

    @property
    def input_width(self) -> int:
        return self.W.shape[1]

    def __call__(self, x):
        T = x.shape[-1]
        distance = jnp.abs(jnp.arange(T)[:, None] - jnp.arange(T)[None, :])
        scores = jnp.einsum("bis,hij,bjt->bhst", x, self.W, x)
        return jax.nn.softmax(scores - jnp.asarray(self.slopes)[:, None, None] * distance, axis=-2)


def alibi_reference(W, slopes, x):
    """The same attention by loops: omega[b, h, :, t] = softmax_s(x_s^T W_h x_t - m_h |s - t|)."""
    P, _, T = x.shape
    out = np.zeros((P, len(slopes), T, T))
    for b in range(P):
        for h, m in enumerate(slopes):
            for t in range(T):
                a = np.array([x[b, :, s] @ W[h] @ x[b, :, t] - m * abs(s - t) for s in range(T)])
                e = np.exp(a - a.max())
                out[b, h, :, t] = e / e.sum()
    return out


@pytest.fixture
def alibi():
    ap.register_heads("test-alibi", ALiBiHeads)
    yield "test-alibi"
    ap.unregister_heads("test-alibi")


@pytest.fixture
def network(alibi):
    """Layer 1: two ALiBi heads built from the registry; layer 2: three bilinear heads. 6 paths.

    Shapes as in the shared `problem` fixture (P = 12 + 5, N0 = 5), so that a full run compiles the solver once.
    """
    rng = np.random.default_rng(7)
    n0, n_tokens = 5, 4
    W1, slopes = rng.normal(size=(2, n0, n0)) / n0, (0.3, 1.5)
    W2 = rng.normal(size=(3, n0, n0)) / n0
    layers = [ap.make_heads(alibi, W=W1, slopes=slopes), ap.make_heads("bilinear", W=W2)]
    spec = ap.NetworkSpec(heads=(2, 3), widths=4.0, temperature=0.2, readout="last")
    x = rng.normal(size=(17, n0, n_tokens))
    y = np.sign(x[:, 0, -1] + 0.3 * rng.normal(size=17))
    omega2 = np.asarray(layers[1](jnp.asarray(x)))
    reference = brute_force_path_inputs([alibi_reference(W1, slopes, x), omega2], x, "last")
    xi_ref = reference / np.sqrt(n0 * spec.n_paths)
    return spec, layers, x[:12], y[:12], x[12:], xi_ref[:12], xi_ref[12:]


def test_registry_builds_the_user_head(alibi):
    assert alibi in ap.head_types() and {"bilinear", "given", "qk"} <= set(ap.head_types())
    layer = ap.make_heads(alibi, W=np.zeros((3, 2, 2)), slopes=(1.0, 2.0, 3.0))
    assert isinstance(layer, ALiBiHeads) and isinstance(layer, ap.Heads) and layer.n_heads == 3
    with pytest.raises(ValueError, match="head type 'test-alibi' is already registered; pass replace=True"):
        ap.register_heads(alibi, ap.QKHeads)


def test_registry_refuses_a_factory_that_builds_no_heads():
    ap.register_heads("test-not-heads", lambda width: np.zeros(width))
    try:
        with pytest.raises(ValueError, match="head type 'test-not-heads' built a ndarray, which lacks n_heads"):
            ap.make_heads("test-not-heads", width=3)
    finally:
        ap.unregister_heads("test-not-heads")
    assert "test-not-heads" not in ap.head_types()


def test_the_registry_docstring_example_runs():
    doc = ap.register_heads.__doc__
    example = textwrap.dedent(doc[doc.index("Example::") + len("Example::"):])
    namespace = dict(dataclass=dataclass, jax=jax, jnp=jnp, attnpaths=ap)
    try:
        exec(example, namespace)
        layer = namespace["layer"]
        x = np.random.default_rng(0).normal(size=(3, 8, 5))
        omega = np.asarray(ap.attention_matrices([layer], x)[0])
        assert omega.shape == (3, 2, 5, 5)
        np.testing.assert_allclose(omega.sum(axis=2), 1.0, rtol=1e-12)  # normalised over keys
        # a larger slope pulls more weight onto the query's own position
        assert np.mean(np.diagonal(omega[:, 1], axis1=1, axis2=2)) > np.mean(np.diagonal(omega[:, 0], axis1=1,
                                                                                        axis2=2))
    finally:
        ap.unregister_heads("alibi")


def test_user_head_attention_and_path_features_match_loops(network):
    spec, layers, x, y, xt, xi_ref, xit_ref = network
    np.testing.assert_allclose(ap.attention_matrices(layers[:1], x)[0],
                               alibi_reference(layers[0].W, layers[0].slopes, x), rtol=1e-12, atol=1e-15)
    for chunk_size in (3, 512):
        np.testing.assert_allclose(ap.path_features(spec, layers, x, chunk_size=chunk_size), xi_ref,
                                   rtol=1e-12, atol=1e-15)


def test_user_head_through_the_saddle_point_and_predictor(network):
    spec, layers, x, y, xt, xi_ref, xit_ref = network
    xi, xit = ap.path_features(spec, layers, x), ap.path_features(spec, layers, xt)
    saddle = ap.solve_saddle(spec, xi, y)
    assert saddle.converged
    np.testing.assert_allclose(saddle.U1, ap.solve_saddle(spec, xi_ref, y).U1, rtol=1e-8, atol=1e-10)
    # the predictor is kernel regression with K_U (spec B.6), here written out on the loop features
    U = saddle.U1
    K = np.einsum("mip,pq,niq->mn", xi_ref, U, xi_ref) + spec.temperature * np.eye(len(y))
    k = np.einsum("mip,pq,niq->mn", xi_ref, U, xit_ref)
    pred = ap.predict(spec, xi, y, xit, U)
    np.testing.assert_allclose(pred.mean, k.T @ np.linalg.solve(K, y), rtol=1e-9)
    kss = np.einsum("mip,pq,miq->m", xit_ref, U, xit_ref)
    np.testing.assert_allclose(pred.var, kss - np.einsum("mn,mn->n", k, np.linalg.solve(K, k)), rtol=1e-8)
    model = ap.AttentionPathsRegressor(spec, layers).fit(x, y)
    np.testing.assert_allclose(model.predict(xt), pred.mean, rtol=1e-8)


def test_user_head_through_the_gibbs_sampler(network):
    spec, layers, x, y, xt, xi_ref, xit_ref = network
    # the sampler built from the user's heads makes the same draws as the one built from the loop features
    from_heads = ap.BlockedGibbs(spec, layers, x, y)
    from_loops = ap.BlockedGibbs.from_features(spec, xi_ref, y)
    xit = ap.path_features(spec, layers, xt)
    a = ap.run_sampler(from_heads, xit, 3, n_chains=2, n_warmup=2, seed=5, progress=False)
    b = ap.run_sampler(from_loops, xit_ref, 3, n_chains=2, n_warmup=2, seed=5, progress=False)
    assert a.f_test.shape == (2, 3, len(xt)) and np.all(np.isfinite(a.f_test))
    np.testing.assert_allclose(a.f_test, b.f_test, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.U, b.U, rtol=1e-9, atol=1e-12)


# ---- a user's task through the command line --------------------------------------------------------------
@dataclass(frozen=True)
class UserTaskSettings(Settings):
    """The user's own task: the ALiBi network of the `network` fixture at one width."""

    width: float = setting(4.0, "width N of the theory and the sampled network", check=positive)
    n_draws: int = setting(3, "Gibbs draws per chain", check=at_least(1))


def _user_task(network):
    spec0, layers, x, y, xt, *_ = network

    def run(s: UserTaskSettings, out, resume, log):
        spec = spec0.with_width(s.width)
        xi, xit = ap.path_features(spec, layers, x), ap.path_features(spec, layers, xt)
        saddle = ap.solve_saddle(spec, xi, y)
        draws = ap.sample(spec, layers, x, y, xt, method="gibbs", n_draws=s.n_draws, n_chains=2, n_warmup=2,
                          seed=3, path=Path(out) / "draws.npz", progress=False)
        results = {"U1": saddle.U1.tolist(), "mean": ap.predict(spec, xi, y, xit, saddle.U1).mean.tolist(),
                   "sampled_mean": np.asarray(draws.f_test).mean(axis=(0, 1)).tolist()}
        write_json_atomic(Path(out) / "results.json", results)
        log(f"user task: N = {s.width:g}, {saddle.iterations} Newton steps")
        return results

    return Experiment(name="user-alibi", help="the test's own task on its own heads", settings=UserTaskSettings,
                      presets=Registry("preset of user-alibi"), run=run, report=lambda r, sec: ["done"])


@pytest.fixture
def user_task(network):
    EXPERIMENTS.register("user-alibi", _user_task(network))
    yield network
    EXPERIMENTS.unregister("user-alibi")


def test_user_task_on_user_heads_runs_from_the_command_line(user_task, tmp_path, capsys):
    from attnpaths.cli import main

    spec, layers, x, y, xt, xi_ref, xit_ref = user_task
    assert main(["user-alibi", "--set", "width=7", "--n-draws", "4", "--out", str(tmp_path)]) == 0
    assert "user task: N = 7" in capsys.readouterr().out
    results = json.loads((tmp_path / "results.json").read_text())
    # the command ran the theory at the width it was given, on the user's heads (against the loop features)
    expected = ap.solve_saddle(spec.with_width(7.0), xi_ref, y).U1
    np.testing.assert_allclose(results["U1"], expected, rtol=1e-8, atol=1e-10)
    stored = ap.load_draws(tmp_path / "draws.npz")
    assert stored.f_test.shape == (2, 4, len(xt))
    np.testing.assert_allclose(results["sampled_mean"], np.asarray(stored.f_test).mean(axis=(0, 1)), rtol=1e-12)
    # its settings are options with help, and unknown keys are refused by name
    with pytest.raises(SystemExit):
        main(["user-alibi", "--help"])
    assert "width N of the theory" in capsys.readouterr().out
    assert main(["user-alibi", "--set", "widht=3", "--out", str(tmp_path / "b")]) == 2
    assert "widht" in capsys.readouterr().err


# ---- the public surface --------------------------------------------------------------------------------------
def test_public_names_exist_once_and_cover_the_readme():
    assert len(ap.__all__) == len(set(ap.__all__))
    assert all(hasattr(ap, name) for name in ap.__all__)
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    used = set()
    for block in re.findall(r"```python\n(.*?)```", readme, flags=re.S):
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "ap":
                used.add(node.attr)
    assert used and used <= set(ap.__all__), sorted(used - set(ap.__all__))
    assert "_src" not in readme.split("## Where each equation lives")[0]


def test_public_names_are_sorted_within_their_groups():
    source = (Path(ap.__file__)).read_text()
    body = source[source.index("__all__ = ["):]
    body = body[:body.index("]")]
    groups = [re.findall(r'"(\w+)"', g) for g in re.split(r"\n\s*#[^\n]*", body)]
    groups = [g for g in groups if g]
    assert len(groups) >= 8
    for group in groups:
        assert group == sorted(group), group
