"""The gradient-descent network of experiment 2 (spec E.2, E.5c, E.7): forward pass, attention transfer to the
theory, head pruning, analyses, training, checkpoints."""

import dataclasses
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import attnpaths
from attnpaths._src import training as tr
from attnpaths._src.tasks import sources

ARCH = tr.Architecture(input_width=16, heads=(3, 2), width=8, qk_dim=4)


@pytest.fixture(scope="module")
def data():
    d = sources.oneshot_dataset("digits", n_train=96, n_test=64, seed=3)
    return d


@pytest.fixture(scope="module")
def params():
    p = tr.init_params(ARCH, seed=1)
    # sharpen the attention so that it is far from uniform
    return p._replace(Q=tuple(3 * q for q in p.Q), K=tuple(3 * k for k in p.K))


def _reference_forward(p, x, mask=None):
    """Loop-over-heads NumPy forward pass."""
    V0, a = np.asarray(p.V0), np.asarray(p.a)
    z = np.einsum("ni,bit->bnt", V0, x)
    for l in range(len(p.V)):
        Q, K, V = (np.asarray(w) for w in (p.Q[l], p.K[l], p.V[l]))
        keep = np.ones(len(V)) if mask is None else np.asarray(mask[l])
        out = np.zeros_like(z)
        for h in range(len(V)):
            if not keep[h]:
                continue
            scores = np.einsum("gi,bis,gj,bjt->bst", K[h], x, Q[h], x) / np.sqrt(Q.shape[1])
            om = np.exp(scores - scores.max(axis=1, keepdims=True))
            om /= om.sum(axis=1, keepdims=True)
            out += np.einsum("nm,bms,bst->bnt", V[h], z, om)
        z = out / np.sqrt(keep.sum())
    return z.mean(-1) @ a


def test_forward_matches_reference(params, data):
    x = data.train.x[:20]
    np.testing.assert_allclose(tr.gd_output(params, x), _reference_forward(params, x), rtol=1e-10, atol=1e-13)


def test_attention_transfer_is_exact(params, data):
    x = data.test.x
    own = tr.model_attention(params, x)
    theory = attnpaths.attention_matrices(tr.attention_layers(params), x)
    for l, (a, b) in enumerate(zip(own, theory)):
        assert a.shape == b.shape == (64, ARCH.heads[l], 12, 12)
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(np.sum(a, axis=-2), 1.0, atol=1e-12)  # softmax over keys
        assert float(np.max(a)) > 0.5  # not uniform (1/12)


def test_forward_is_a_sum_over_paths(params, data):
    """f(x) = prod_l H_l^-1/2 sum_pi w_pi . V0 x_pi with attnpaths' path weights and gd_order_parameter's w."""
    x = data.test.x
    attention = attnpaths.attention_matrices(tr.attention_layers(params), x)
    weights = np.asarray(attnpaths.path_token_weights(attention, "mean"))  # (P, H, T)
    w = tr.path_readout_weights(params)  # (H, N)
    f = np.einsum("pn,ni,bit,bpt->b", w, np.asarray(params.V0), x, weights) / np.sqrt(np.prod(ARCH.heads))
    np.testing.assert_allclose(tr.gd_output(params, x), f, rtol=1e-10, atol=1e-13)


def test_gd_order_parameter_matches_loops(params):
    U = tr.gd_order_parameter(params)
    H1, H2 = ARCH.heads
    a, V1, V2 = np.asarray(params.a), np.asarray(params.V[0]), np.asarray(params.V[1])
    w = np.array([a @ V2[h2] @ V1[h1] for h1 in range(H1) for h2 in range(H2)])  # lower layer outermost
    np.testing.assert_allclose(U, w @ w.T, rtol=1e-12)
    assert U.shape == (6, 6) and np.linalg.eigvalsh(U).min() > -1e-12


@pytest.mark.parametrize("layer, head", [(0, 1), (1, 0)])
def test_pruning_equals_network_without_the_head(params, data, layer, head):
    x = data.test.x
    mask = tr.head_mask_without(params, [(layer, head)])
    keep = np.arange(ARCH.heads[layer]) != head
    sliced = params._replace(
        Q=tuple(q[keep] if l == layer else q for l, q in enumerate(params.Q)),
        K=tuple(k[keep] if l == layer else k for l, k in enumerate(params.K)),
        V=tuple(v[keep] if l == layer else v for l, v in enumerate(params.V)))
    assert tr.architecture_of(sliced).heads[layer] == ARCH.heads[layer] - 1
    pruned = tr.gd_output(params, x, head_mask=mask)
    np.testing.assert_allclose(pruned, tr.gd_output(sliced, x), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(pruned, _reference_forward(params, x, mask), rtol=1e-10, atol=1e-13)
    assert not np.allclose(pruned, tr.gd_output(params, x))


def test_full_mask_is_no_mask(params, data):
    x = data.test.x
    np.testing.assert_array_equal(tr.gd_output(params, x, head_mask=[np.ones(3), np.ones(2)]), tr.gd_output(params, x))


def test_head_importance_equals_finite_differences(params, data):
    """A gate on head h scales V_l[h]; I_lh = sum_mu |d loss_mu/d g| by central differences."""
    x, y = data.train.x[:24], data.train.y[:24]
    imp = tr.head_importance_gradient(params, x, y, chunk_size=10)
    assert imp.shape == (2, 3) and np.isnan(imp[1, 2])
    eps = 1e-6
    for l, H in enumerate(ARCH.heads):
        for h in range(H):
            def per_example(g):
                V = [np.array(v) for v in params.V]
                V[l][h] *= g
                return (np.asarray(tr.gd_output(params._replace(V=tuple(V)), x)) - y) ** 2
            fd = np.abs((per_example(1 + eps) - per_example(1 - eps)) / (2 * eps)).sum()
            np.testing.assert_allclose(imp[l, h], fd, rtol=1e-6)


def test_prune_accuracy_curve(params, data):
    x, y = data.test.x, data.test.y
    order = [(1, 0), (0, 2), (0, 0), (1, 1)]
    curve = tr.prune_accuracy_curve(params, x, y, order)
    assert curve.shape == (4,)
    assert curve[0] == tr.gd_accuracy(params, x, y)
    assert curve[2] == tr.gd_accuracy(params, x, y, head_mask=[[1, 1, 0], [0, 1]])
    assert not np.isnan(curve[3])  # layer 1 still has head 1 at k = 3
    assert np.isnan(tr.prune_accuracy_curve(params, x, y, [(1, 0), (1, 1), (0, 0)])[2])
    drops = tr.single_head_drop_accuracy(params, x, y)
    assert drops.shape == (2, 3) and np.isnan(drops[1, 2])
    assert drops[0, 2] == tr.gd_accuracy(params, x, y, head_mask=[[1, 1, 0], [1, 1]])


def test_network_calls_the_library_attention(params, data, monkeypatch):
    """The trained network's attention is attnpaths.QKHeads' own: with QKHeads' scores replaced by zeros
    (uniform attention) the network's output changes, and equals a loop with uniform attention."""
    import jax
    import jax.numpy as jnp

    x = data.test.x[:8]
    before = tr.gd_output(params, x)
    monkeypatch.setattr(attnpaths.QKHeads, "scores",
                        lambda self, x: jnp.zeros((x.shape[0], self.Q.shape[0], x.shape[2], x.shape[2])))
    jax.clear_caches()  # the compiled output was traced with the real scores
    try:
        after = tr.gd_output(params, x)
    finally:
        monkeypatch.undo()
        jax.clear_caches()
    assert not np.allclose(before, after)
    flat = params._replace(Q=tuple(0 * q for q in params.Q))  # zero queries: uniform attention too
    np.testing.assert_allclose(after, _reference_forward(flat, x), rtol=1e-10, atol=1e-13)


def test_float32_network_matches_float64(data):
    p64 = tr.init_params(ARCH, seed=1)
    p32 = tr.init_params(tr.Architecture(16, (3, 2), 8, 4, "float32"), seed=1)
    assert p32.V0.dtype == np.float32 and tr.architecture_of(p32).dtype == "float32"
    np.testing.assert_allclose(p32.V0, p64.V0, rtol=1e-6)
    np.testing.assert_allclose(tr.gd_output(p32, data.test.x), tr.gd_output(p64, data.test.x), rtol=1e-3,
                               atol=1e-5)


def test_short_training_lowers_loss(data):
    config = tr.TrainConfig(steps=60, batch_size=32, learning_rate=3e-3)
    res = tr.train(ARCH, (data.train.x, data.train.y), config, progress=False)
    before = tr.gd_loss(tr.init_params(ARCH, config.seed), data.train.x, data.train.y)
    after = tr.gd_loss(res.params, data.train.x, data.train.y)
    assert res.losses.shape == (60,) and res.step == 60
    assert after < 0.8 * before


def _leaves(p):
    import jax
    return [np.asarray(v) for v in jax.tree_util.tree_leaves(p)]


class _Fresh:
    """A batch source drawing fresh examples every step (labels from a fixed random readout)."""

    input_width = 16

    def fingerprint(self):
        return "fresh"

    def batch(self, seed, step, size):
        rng = np.random.default_rng([seed, step])
        x = rng.normal(size=(size, 16, 12))
        return x, np.where(x[:, 0, :].sum(-1) > 0, 1.0, -1.0)


def test_validation_keeps_the_best_weights(data):
    """With validation every 5 steps the returned weights are those of the best validation accuracy, and the
    curve holds one entry per validation."""
    xv, yv = data.test.x, data.test.y
    config = tr.TrainConfig(steps=30, batch_size=16, learning_rate=3e-2, eval_every=5, seed=4)
    res = tr.train(ARCH, _Fresh(), config, validation=(xv, yv), progress=False)
    c = res.curve
    np.testing.assert_array_equal(c.step, [5, 10, 15, 20, 25, 30])
    best = int(np.argmax(c.val_accuracy))  # first maximum: ties keep the earlier weights
    assert res.best_step == c.step[best]
    assert tr.gd_accuracy(res.params, xv, yv) == c.val_accuracy[best]
    assert tr.gd_accuracy(res.final_params, xv, yv) == c.val_accuracy[-1]
    np.testing.assert_allclose(c.train_loss[0], np.mean(res.losses[:5]))
    assert np.all((c.train_accuracy >= 0) & (c.train_accuracy <= 1))


def test_seed_reproducible_and_resume_identical(data, tmp_path):
    x, y = data.train.x, data.train.y
    config = tr.TrainConfig(steps=12, batch_size=32, checkpoint_every=4, eval_every=6, seed=7)
    val = (data.test.x, data.test.y)
    full = tr.train(ARCH, (x, y), config, validation=val, checkpoint=tmp_path / "full.npz", progress=False)
    again = tr.train(ARCH, (x, y), config, validation=val, progress=False, checkpoint=tmp_path / "again.npz")
    for a, b in zip(_leaves(full.params), _leaves(again.params)):
        np.testing.assert_array_equal(a, b)
    # and the seed matters: another seed gives another network (initialisation and batches), every weight array
    other = tr.train(ARCH, (x, y), dataclasses.replace(config, seed=8, checkpoint_every=0), progress=False)
    for a, b in zip(_leaves(full.final_params), _leaves(other.final_params)):
        assert not np.allclose(a, b), "two seeds gave the same weights"
    assert not np.allclose(full.losses, other.losses)
    # a run to step 6 (a validation step), then extended to 12
    part = tr.TrainConfig(steps=6, batch_size=32, checkpoint_every=4, eval_every=6, seed=7)
    tr.train(ARCH, (x, y), part, validation=val, checkpoint=tmp_path / "part.npz", progress=False)
    ck = tr.load_checkpoint(tmp_path / "part.npz", ARCH)
    assert ck.step == 6 and ck.losses.shape == (6,) and ck.curve.step.tolist() == [6.0]
    resumed = tr.train(ARCH, (x, y), config, validation=val, checkpoint=tmp_path / "part.npz", resume=True,
                       progress=False)
    for a, b in zip(_leaves(full.params) + _leaves(full.final_params),
                    _leaves(resumed.params) + _leaves(resumed.final_params)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(full.losses, resumed.losses)
    for a, b in zip(full.curve, resumed.curve):
        np.testing.assert_array_equal(a, b)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.npz", "full.npz", "part.npz"]  # no temp files


@pytest.mark.parametrize("optimizer", [{}, {"optimizer": "adam_l2", "schedule": "warmup_cosine", "warmup_steps": 2},
                                       {"ema": 0.8, "snapshots": True, "eval_every": 3}])
def test_resume_after_interruption(tmp_path, monkeypatch, optimizer):
    """A run killed at step 5 leaves the step-3 checkpoint (written every 3 steps); resuming it to step 8 gives
    the uninterrupted result bitwise (fresh batches: a function of (seed, step))."""
    source = _Fresh()
    config = tr.TrainConfig(steps=8, batch_size=16, checkpoint_every=3, seed=2, **optimizer)
    full = tr.train(ARCH, source, tr.TrainConfig(steps=8, batch_size=16, seed=2, **optimizer), progress=False)
    ck_path = tmp_path / "ck.npz"
    original = _Fresh.batch

    def interrupt(self, seed, step, size):
        if step == 5:
            raise KeyboardInterrupt
        return original(self, seed, step, size)

    monkeypatch.setattr(_Fresh, "batch", interrupt)
    with pytest.raises(KeyboardInterrupt):
        tr.train(ARCH, source, config, checkpoint=ck_path, progress=False)
    monkeypatch.setattr(_Fresh, "batch", original)
    assert tr.load_checkpoint(ck_path).step == 3
    resumed = tr.train(ARCH, source, config, checkpoint=ck_path, resume=True, progress=False)
    for a, b in zip(_leaves(full.params), _leaves(resumed.params)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(full.losses, resumed.losses)
    assert tr.load_checkpoint(ck_path).step == 8
    assert [s for s, _ in resumed.snapshots] == [s for s, _ in full.snapshots]
    assert len(full.snapshots) == (3 if optimizer.get("snapshots") else 0)  # steps 3, 6, 8
    for (_, a), (_, b) in zip(full.snapshots, resumed.snapshots):
        for u, v in zip(_leaves(a), _leaves(b)):
            np.testing.assert_array_equal(u, v)


def test_kept_snapshots_are_written_once_each(tmp_path, monkeypatch):
    """Each kept snapshot is a file of its own beside the checkpoint, written once, when it is taken (a checkpoint
    holding them all was rewritten whole at every validation); the checkpoint holds none. A checkpoint that lists
    a missing snapshot, or one of another training, is refused naming the file; a checkpoint of the earlier format
    (snapshots inside) still loads."""
    from collections import Counter

    from attnpaths._src.store import load_record, save_record
    from attnpaths._src.training import fit

    writes = Counter()
    real = fit.save_record

    def counted(path, kind, header, arrays):
        writes[Path(path).relative_to(tmp_path).as_posix()] += 1
        return real(path, kind, header, arrays)

    monkeypatch.setattr(fit, "save_record", counted)
    ck = tmp_path / "ck.npz"
    res = tr.train(ARCH, _Fresh(), tr.TrainConfig(steps=6, batch_size=16, seed=2, eval_every=2, snapshots=True),
                   checkpoint=ck, progress=False)
    folder = fit.snapshot_folder(ck)
    assert folder == tmp_path / "ck.snapshots"
    assert sorted(p.name for p in folder.iterdir()) == ["step2.npz", "step4.npz", "step6.npz"]
    assert writes == Counter({"ck.npz": 3, "ck.snapshots/step2.npz": 1, "ck.snapshots/step4.npz": 1,
                              "ck.snapshots/step6.npz": 1})
    header, arrays = load_record(ck)
    assert not [k for k in arrays if k.startswith("snap")]

    def same_snapshots(loaded):
        assert [s for s, _ in loaded.snapshots] == [2, 4, 6]
        for (_, a), (_, b) in zip(res.snapshots, loaded.snapshots):
            for u, v in zip(_leaves(a), _leaves(b)):
                np.testing.assert_array_equal(u, v)

    same_snapshots(tr.load_checkpoint(ck))
    inside = {f"snap{k}.{i}": leaf for k, (_, w) in enumerate(res.snapshots) for i, leaf in enumerate(_leaves(w))}
    save_record(tmp_path / "old.npz", fit.CHECKPOINT_KIND, header, {**arrays, **inside})
    same_snapshots(tr.load_checkpoint(tmp_path / "old.npz"))
    (folder / "step4.npz").unlink()
    with pytest.raises(ValueError, match="step4.npz is missing"):
        tr.load_checkpoint(ck)
    save_record(folder / "step4.npz", fit.SNAPSHOT_KIND, {"step": 4, "data": "another"},
                {f"snap.{i}": leaf for i, leaf in enumerate(_leaves(res.snapshots[1][1]))})
    with pytest.raises(ValueError, match="step4.npz holds the snapshot of another training"):
        tr.load_checkpoint(ck)


def test_weight_average_and_snapshots_by_hand():
    """With ema = d the kept weights are the Polyak average a_k = d a_(k-1) + (1 - d) w_k of the optimiser's
    weights w_k (a_0 the initial weights), which the optimiser never sees: the plain run's snapshots (its w_k at
    every validation) give it by hand; the snapshots come at the validation steps and the last is the best when
    nothing is validated."""
    source, d = _Fresh(), 0.7
    plain = tr.train(ARCH, source, tr.TrainConfig(steps=6, batch_size=16, seed=3, eval_every=1, snapshots=True),
                     progress=False)
    avg = tr.train(ARCH, source, tr.TrainConfig(steps=6, batch_size=16, seed=3, eval_every=1, snapshots=True,
                                                ema=d), progress=False)
    assert [s for s, _ in plain.snapshots] == [1, 2, 3, 4, 5, 6]
    np.testing.assert_array_equal(plain.losses, avg.losses)  # the average does not feed back
    for u, v in zip(_leaves(plain.final_params), _leaves(avg.final_params)):
        np.testing.assert_array_equal(u, v)
    a = _leaves(tr.init_params(ARCH, seed=3))
    for (_, w), (_, got) in zip(plain.snapshots, avg.snapshots):
        a = [d * x + (1 - d) * y for x, y in zip(a, _leaves(w))]
        for u, v in zip(a, _leaves(got)):
            np.testing.assert_allclose(v, u, rtol=1e-5, atol=1e-7)
    for u, v in zip(_leaves(avg.snapshots[-1][1]), _leaves(avg.params)):  # no validation set: the last is kept
        np.testing.assert_array_equal(u, v)
    assert tr.train(ARCH, source, tr.TrainConfig(steps=2, batch_size=16), progress=False).snapshots == ()


def _manual_adam(w, grads, lr, wd, decoupled, b1=0.9, b2=0.999, eps=1e-8):
    """Adam written out (Kingma & Ba, Alg. 1) on a list of gradients; weight decay as L2 on the gradient
    (PyTorch's Adam) or decoupled (AdamW)."""
    m = v = np.zeros_like(w)
    for t, g in enumerate(grads, 1):
        g = g if decoupled else g + wd * w
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        step = (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        w = w - lr * (step + wd * w if decoupled else step)
    return w


@pytest.mark.parametrize("name, decoupled", [("adam_l2", False), ("adamw", True)])
def test_optimizer_table_matches_adam_written_out(name, decoupled):
    rng = np.random.default_rng(0)
    w0, grads = rng.standard_normal(7), [rng.standard_normal(7) for _ in range(4)]
    lr, wd = 0.05, 0.3  # a large decay so that its two placements differ clearly
    opt = tr.TrainConfig(learning_rate=lr, weight_decay=wd, optimizer=name).transformation()
    w, state = jnp.asarray(w0), opt.init(jnp.asarray(w0))
    for g in grads:
        upd, state = opt.update(jnp.asarray(g), state, w)
        w = optax.apply_updates(w, upd)
    np.testing.assert_allclose(w, _manual_adam(w0, grads, lr, wd, decoupled), rtol=1e-12, atol=1e-14)
    assert np.max(np.abs(_manual_adam(w0, grads, lr, wd, not decoupled) - np.asarray(w))) > 1e-3


def test_warmup_cosine_schedule():
    config = tr.TrainConfig(steps=10, learning_rate=0.2, schedule="warmup_cosine", warmup_steps=4)
    sched = tr.SCHEDULES["warmup_cosine"](0.2, 4, 10)
    np.testing.assert_allclose([sched(t) for t in (0, 2, 4, 7, 10)],
                               [0.0, 0.1, 0.2, 0.1, 0.0], atol=1e-12)
    # the first Adam step moves a weight by lr(0) = 0: nothing happens until the warm-up starts
    opt = config.transformation()
    upd, _ = opt.update(jnp.ones(3), opt.init(jnp.zeros(3)), jnp.zeros(3))
    np.testing.assert_array_equal(upd, 0.0)


def test_scheduled_run_resumes_only_with_its_steps(data, tmp_path):
    x, y = data.train.x, data.train.y
    config = tr.TrainConfig(steps=4, batch_size=32, schedule="warmup_cosine", warmup_steps=2)
    tr.train(ARCH, (x, y), config, checkpoint=tmp_path / "ck.npz", progress=False)
    longer = tr.TrainConfig(steps=8, batch_size=32, schedule="warmup_cosine", warmup_steps=2)
    with pytest.raises(ValueError, match="steps: checkpoint 4, requested 8"):
        tr.train(ARCH, (x, y), longer, checkpoint=tmp_path / "ck.npz", resume=True, progress=False)


def test_checkpoint_mismatch_raises(data, tmp_path):
    x, y = data.train.x, data.train.y
    path = tmp_path / "ck.npz"
    config = tr.TrainConfig(steps=2, batch_size=32)
    tr.train(ARCH, (x, y), config, checkpoint=path, progress=False)
    other = tr.Architecture(input_width=16, heads=(3, 2), width=12, qk_dim=4)
    with pytest.raises(ValueError, match="another architecture .*width: checkpoint 8, requested 12"):
        tr.load_checkpoint(path, other)
    with pytest.raises(ValueError, match=r"heads: checkpoint \[3, 2\], requested \[2, 2\]"):
        tr.train(tr.Architecture(16, (2, 2), 8, 4), (x, y), config, checkpoint=path, resume=True, progress=False)
    with pytest.raises(ValueError, match="learning_rate: checkpoint 0.001, requested 0.01"):
        tr.train(ARCH, (x, y), tr.TrainConfig(steps=2, batch_size=32, learning_rate=0.01), checkpoint=path,
                 resume=True, progress=False)
    with pytest.raises(ValueError, match="trained on other data"):
        tr.train(ARCH, (x[:64], y[:64]), config, checkpoint=path, resume=True, progress=False)
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="other.npz is not an attnpaths record"):
        tr.load_checkpoint(tmp_path / "other.npz")


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_checkpoint_is_a_one_line_error(data, tmp_path, cut):
    path = tmp_path / "ck.npz"
    tr.train(ARCH, (data.train.x, data.train.y), tr.TrainConfig(steps=2, batch_size=32), checkpoint=path,
             progress=False)
    raw = path.read_bytes()
    path.write_bytes(raw[: int(cut * len(raw))])
    with pytest.raises(ValueError, match="ck.npz is corrupt or truncated") as info:
        tr.load_checkpoint(path)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="ck.npz is corrupt or truncated"):
        tr.train(ARCH, (data.train.x, data.train.y), tr.TrainConfig(steps=4, batch_size=32), checkpoint=path,
                 resume=True, progress=False)


BAD = [
    (lambda p, x, y: tr.Architecture(input_width=0), "input_width must be a positive int"),
    (lambda p, x, y: tr.Architecture(16, heads=()), "at least one layer"),
    (lambda p, x, y: tr.Architecture(16, heads=(2, 0)), "heads must be a positive int"),
    (lambda p, x, y: tr.TrainConfig(steps=0), "steps must be an int >= 1"),
    (lambda p, x, y: tr.TrainConfig(ema=1.0), "ema must be a number in \\[0, 1\\)"),
    (lambda p, x, y: tr.TrainConfig(snapshots=1), "snapshots must be a bool"),
    (lambda p, x, y: tr.TrainConfig(learning_rate=-1.0), "learning_rate must be a finite number >= 0"),
    (lambda p, x, y: tr.gd_output(p, x[:, :8]), r"x must have shape \(\?, 16, \?\)"),
    (lambda p, x, y: tr.gd_output(p, x, head_mask=np.ones((2, 3))), r"head_mask\[1\] must have shape \(2,\)"),
    (lambda p, x, y: tr.gd_output(p, x, head_mask=[np.ones(3)]), "one row per layer"),
    (lambda p, x, y: tr.gd_output(p, x, head_mask=[[1, 1, 1], [0, 0]]), "prunes all 2 heads of layer 1"),
    (lambda p, x, y: tr.gd_output(p, x, head_mask=[[1, 0.5, 1], [1, 1]]), "must be 0 .pruned. or 1"),
    (lambda p, x, y: tr.gd_accuracy(p, x, y[:3]), "y has 3 entries but x has"),
    (lambda p, x, y: tr.gd_accuracy(p, x, 0.5 * y), r"y must hold labels \+1 / -1"),
    (lambda p, x, y: tr.prune_accuracy_curve(p, x, y, [(1, 2)]), r"head \(1, 2\) does not exist"),
    (lambda p, x, y: tr.prune_accuracy_curve(p, x, y, [(0, 0), (0, 0)]), "lists a head twice"),
    (lambda p, x, y: tr.train(tr.Architecture(8), (x, y), progress=False), "arch.input_width = 8"),
    (lambda p, x, y: tr.train(ARCH, (x, y), tr.TrainConfig(checkpoint_every=5), progress=False),
     "needs a checkpoint path"),
    (lambda p, x, y: tr.train(ARCH, (x, y), resume=True, progress=False), "resume=True needs a checkpoint"),
    (lambda p, x, y: tr.train(ARCH, (x, y), validation=(x[:, :8], y), progress=False),
     r"validation x must have shape \(\?, 16, \?\)"),
    (lambda p, x, y: tr.Architecture(16, dtype="float16"), "dtype must be one of"),
    (lambda p, x, y: tr.TrainConfig(eval_every=-1), "eval_every must be an int >= 0"),
    (lambda p, x, y: tr.TrainConfig(optimizer="sgd"), "unknown optimizer 'sgd'.*known: adam_l2, adamw"),
    (lambda p, x, y: tr.TrainConfig(schedule="cosine"), "unknown learning-rate schedule 'cosine'"),
    (lambda p, x, y: tr.TrainConfig(steps=10, warmup_steps=11), r"warmup_steps \(11\) must be <= steps"),
]


@pytest.mark.parametrize("call, match", BAD)
def test_bad_inputs_raise(params, data, call, match):
    with pytest.raises(ValueError, match=match):
        call(params, data.train.x, data.train.y)
