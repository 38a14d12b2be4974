"""One-shot episodes (spec E.1, E.2) and the Omniglot reader, on generated fixtures and on the real data."""

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from attnpaths._src.tasks import omniglot as om
from attnpaths._src.tasks import oneshot as os_
from attnpaths._src.tasks import sources as src
from attnpaths._src.tasks.oneshot import EpisodeConfig

REAL_OMNIGLOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "omniglot"
if not REAL_OMNIGLOT.is_dir():
    REAL_OMNIGLOT = om.default_omniglot_dir() or REAL_OMNIGLOT


# ------------------------------------------------------------------------------------------------------------
# token format
# ------------------------------------------------------------------------------------------------------------

def _reference_positions(n_tokens, dim):
    raw = np.zeros((n_tokens, dim))
    for pos in range(n_tokens):
        for i in range(dim):
            freq = 10000.0 ** (-(2 * (i // 2)) / dim)
            raw[pos, i] = np.sin(pos * freq) if i % 2 == 0 else np.cos(pos * freq)
    return (raw - raw.mean()) / raw.std()


@pytest.mark.parametrize("n_tokens, dim", [(12, 16), (48, 64), (7, 5)])
def test_positional_table_is_normalised_sinusoid(n_tokens, dim):
    pe = os_.positional_table(n_tokens, dim)
    assert pe.shape == (n_tokens, dim)
    np.testing.assert_allclose(pe, _reference_positions(n_tokens, dim), rtol=0, atol=1e-12)
    assert abs(pe.mean()) < 1e-12 and abs(pe.std() - 1) < 1e-12


def test_patchify_row_major():
    img = np.arange(64.0).reshape(1, 8, 8)
    p = os_.patchify(img, 4)
    assert p.shape == (1, 4, 16)
    np.testing.assert_array_equal(p[0, 0], img[0, :4, :4].ravel())
    np.testing.assert_array_equal(p[0, 1], img[0, :4, 4:].ravel())  # second patch: top right
    np.testing.assert_array_equal(p[0, 2], img[0, 4:, :4].ravel())


def test_label_embedding_fixed_by_seed():
    c = EpisodeConfig(label_seed=3)
    np.testing.assert_array_equal(os_.label_embedding(c), os_.label_embedding(EpisodeConfig(label_seed=3)))
    np.testing.assert_array_equal(os_.label_embedding(c), np.random.default_rng(3).standard_normal((3, 16)))
    assert not np.allclose(os_.label_embedding(c), os_.label_embedding(EpisodeConfig(label_seed=4)))


def _toy_classes(n_classes=4, n_drawings=3, size=8, seed=0):
    rng = np.random.default_rng(seed)
    return {f"c{k}": rng.random((n_drawings, size, size)) for k in range(n_classes)}


def _decode(x, images, config):
    """Identify (class, drawing, label token) of each of the 3 images of every episode from the tokens."""
    pe = os_.positional_table(config.n_tokens, config.token_dim)
    emb = os_.label_embedding(config)
    table = {(c, d): os_.layer_norm(os_.patchify(imgs[d:d + 1], config.patch_size), config.layer_norm_eps)[0]
             for c, imgs in images.items() for d in range(len(imgs))}
    out = []
    for ep in x:
        seq = ep.T - pe
        found = []
        for j in range(3):
            block = seq[j * config.n_patches:(j + 1) * config.n_patches]
            hits = [(c, d, lab) for (c, d), ref in table.items() for lab in range(3)
                    if np.allclose(block - emb[lab], ref, atol=1e-10)]
            assert len(hits) == 1, hits
            found.append(hits[0])
        out.append(found)
    return out


def test_episodes_are_what_they_claim():
    """Decode every episode from its tokens: labels 0/1 on the supports (either order), 2 on the query; the
    support labelled k is from classes[:, k]; the query is another drawing of the class chosen by y."""
    config = EpisodeConfig(image_size=8, patch_size=4)
    images = _toy_classes()
    ep = os_.make_episodes(images, 40, config, np.random.default_rng(1))
    assert ep.x.shape == (40, 16, 12) and ep.x.dtype == np.float64
    orders = set()
    for (s1, s2, q), y, cls in zip(_decode(ep.x, images, config), ep.y, ep.classes):
        assert {s1[2], s2[2]} == {0, 1} and q[2] == 2
        orders.add((s1[2], s2[2]))
        sup = {s1[2]: s1, s2[2]: s2}
        assert sup[0][0] == cls[0] and sup[1][0] == cls[1] and cls[0] != cls[1]
        k = int(y > 0)
        assert q[0] == cls[k] and q[1] != sup[k][1]
    assert orders == {(0, 1), (1, 0)}


def test_tokens_layer_norm_per_patch():
    config = EpisodeConfig(image_size=8, patch_size=4)
    ep = os_.make_episodes(_toy_classes(), 10, config, np.random.default_rng(0))
    # token minus position minus the label embedding of its image is a LayerNorm'ed patch
    pe = os_.positional_table(config.n_tokens, config.token_dim)
    emb = os_.label_embedding(config)
    query = ep.x.transpose(0, 2, 1)[:, 2 * config.n_patches:] - pe[2 * config.n_patches:] - emb[2]
    np.testing.assert_allclose(query.mean(-1), 0, atol=1e-12)
    var = query.var(-1)
    assert np.all(var < 1) and np.all(var > 0.99)


@pytest.mark.parametrize("n", [1, 2, 7, 100])
def test_labels_balanced(n):
    ep = os_.make_episodes(_toy_classes(), n, EpisodeConfig(), np.random.default_rng(n))
    assert set(np.unique(ep.y)) <= {-1.0, 1.0}
    assert np.sum(ep.y == -1) == n // 2


def test_same_rng_same_episodes():
    a = os_.make_episodes(_toy_classes(), 20, EpisodeConfig(), np.random.default_rng(5))
    b = os_.make_episodes(_toy_classes(), 20, EpisodeConfig(), np.random.default_rng(5))
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.classes, b.classes)


def test_groups_keep_pairs_inside_a_group():
    images = _toy_classes(6, 2)
    groups = [["c0", "c1", "c2"], ["c3", "c4", "c5"]]
    ep = os_.make_episodes(images, 60, EpisodeConfig(), np.random.default_rng(0), groups=groups)
    for c0, c1 in ep.classes:
        assert any(c0 in g and c1 in g for g in groups)


def test_digits_dataset_class_disjoint():
    d = src.oneshot_dataset("digits", n_train=200, n_test=100)
    assert d.train.x.shape == (200, 16, 12) and d.test.x.shape == (100, 16, 12)
    train_seen, test_seen = set(d.train.classes.ravel()), set(d.test.classes.ravel())
    assert train_seen == set("01234") and test_seen == set("789")
    split = src.DATA_SOURCES["digits"](None, 8)
    assert set(split.validation) == {"5", "6"}
    assert not set(d.train_classes) & set(d.test_classes)
    assert np.sum(d.train.y == 1) == 100 and np.sum(d.test.y == 1) == 50


def test_digits_ood_has_omniglot_token_format():
    ep = src.digits_ood_episodes(20, os_.OMNIGLOT_CONFIG)
    assert ep.x.shape == (20, os_.OMNIGLOT_CONFIG.token_dim, os_.OMNIGLOT_CONFIG.n_tokens)
    assert set(ep.classes.ravel()) == {"0", "1"}


BAD_EPISODES = [
    (lambda: EpisodeConfig(image_size=10, patch_size=4), "multiple of patch_size"),
    (lambda: EpisodeConfig(patch_size=0), "patch_size must be an int >= 1"),
    (lambda: os_.make_episodes({"a": np.zeros((3, 8, 8))}, 4, EpisodeConfig(), np.random.default_rng(0)),
     "too few classes"),
    (lambda: os_.make_episodes({"a": np.zeros((1, 8, 8)), "b": np.zeros((3, 8, 8))}, 4, EpisodeConfig(),
                               np.random.default_rng(0)), r">= 2 drawings"),
    (lambda: os_.make_episodes({"a": np.zeros((2, 8, 8)), "b": np.zeros((2, 8, 8))}, 10 ** 4, EpisodeConfig(),
                               np.random.default_rng(0)), "too few classes/drawings"),
    (lambda: os_.make_episodes({"a": np.zeros((2, 9, 9)), "b": np.zeros((2, 9, 9))}, 4, EpisodeConfig(),
                               np.random.default_rng(0)), r"must have shape \(n, 8, 8\)"),
    (lambda: os_.make_episodes(_toy_classes(), 0, EpisodeConfig(), np.random.default_rng(0)),
     "n_episodes must be an int >= 1"),
    (lambda: src.oneshot_dataset("cifar"), "unknown data source 'cifar'; known: digits, omniglot"),
    (lambda: src.oneshot_dataset("digit"), "did you mean 'digits'"),
    (lambda: src.digits_ood_episodes(10, EpisodeConfig(), digits=(3, 3)), "two different digit classes"),
    (lambda: EpisodeConfig(channels=0), "channels must be an int >= 1"),
    (lambda: EpisodeConfig(pixel_std=0.0), "pixel_std must be > 0"),
]


@pytest.mark.parametrize("make, match", BAD_EPISODES)
def test_bad_inputs_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_channels_repeat_each_grey_value():
    config = EpisodeConfig(image_size=8, patch_size=4, channels=3)
    assert config.token_dim == 48 and os_.PAPER_CONFIG.token_dim == 192 and os_.PAPER_CONFIG.n_tokens == 48
    images = _toy_classes()
    ep = os_.make_episodes(images, 6, config, np.random.default_rng(0))
    grey = os_.make_episodes(images, 6, EpisodeConfig(image_size=8, patch_size=4), np.random.default_rng(0))
    pe = os_.positional_table(config.n_tokens, config.token_dim)
    emb = os_.label_embedding(config)
    q = ep.x.transpose(0, 2, 1)[:, 2 * config.n_patches:] - pe[2 * config.n_patches:] - emb[2]
    q = q.reshape(6, config.n_patches, 16, 3)
    np.testing.assert_allclose(q[..., 1], q[..., 0], atol=1e-12)  # "(p1 p2 c)": channels innermost
    np.testing.assert_allclose(q[..., 2], q[..., 0], atol=1e-12)
    g = grey.x.transpose(0, 2, 1)[:, 2 * config.n_patches:] - os_.positional_table(12, 16)[8:] - \
        os_.label_embedding(EpisodeConfig())[2]
    np.testing.assert_allclose(q[..., 0], g, atol=1e-12)  # the same LayerNorm'ed pixels as one channel


def test_dark_strokes_and_pixel_normalisation():
    img = np.random.default_rng(0).random((3, 8, 8))
    labels = np.array([[0, 1, 2]])
    config = EpisodeConfig(dark_strokes=True, pixel_mean=0.922, pixel_std=0.084)
    x = os_.tokens(img[None], labels, config)
    v = os_.patchify((1.0 - img - 0.922) / 0.084, 4)  # (3, 4, 16)
    want = os_.layer_norm(v, 1e-5).reshape(12, 16) + os_.label_embedding(config)[[0] * 4 + [1] * 4 + [2] * 4]
    np.testing.assert_allclose(x[0].T - os_.positional_table(12, 16), want, atol=1e-12)
    assert not np.allclose(x, os_.tokens(img[None], labels, EpisodeConfig()))


def test_fresh_batches_are_a_function_of_seed_and_step():
    b = os_.EpisodeBatches(_toy_classes(), EpisodeConfig())
    x1, y1 = b.batch(3, 10, 16)
    x2, y2 = os_.EpisodeBatches(_toy_classes(), EpisodeConfig()).batch(3, 10, 16)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.allclose(x1, b.batch(3, 11, 16)[0]) and not np.allclose(x1, b.batch(4, 10, 16)[0])
    assert b.input_width == 16 and np.sum(y1 > 0) == 8
    assert b.fingerprint() == os_.EpisodeBatches(_toy_classes(), EpisodeConfig()).fingerprint()
    assert b.fingerprint() != os_.EpisodeBatches(_toy_classes(seed=1), EpisodeConfig()).fingerprint()


def test_batches_from_cached_patches_equal_episodes_from_pixels(monkeypatch):
    """EpisodeBatches normalises every image's patches once; its batches are bitwise the episodes that the
    per-episode path (pixels -> tokens, as make_episodes) draws from the same generator."""
    config = EpisodeConfig(image_size=8, patch_size=4, channels=3, dark_strokes=True, pixel_mean=0.9,
                           pixel_std=0.1)
    refs = [os_.make_episodes(_toy_classes(), 24, config, np.random.default_rng([5, 7, step])) for step in range(3)]
    b = os_.EpisodeBatches(_toy_classes(), config)
    monkeypatch.setattr(os_, "image_patches", lambda *a: pytest.fail("patches recomputed in a batch"))
    for step, ref in enumerate(refs):
        x, y = b.batch(5, step, 24)
        np.testing.assert_array_equal(x, ref.x)
        np.testing.assert_array_equal(y, ref.y)


def test_affine_about_centre_identity_rotation_and_shift():
    img = np.random.default_rng(0).random((8, 8))
    np.testing.assert_allclose(os_.affine_about_centre(img, 0.0, 1.0, (0, 0)), img, atol=1e-12)
    quarter = os_.affine_about_centre(img, np.pi / 2, 1.0, (0, 0))
    assert any(np.allclose(quarter, np.rot90(img, k), atol=1e-9) for k in (1, 3))
    moved = os_.affine_about_centre(img, 0.0, 1.0, (1, 0))
    np.testing.assert_allclose(moved[1:], img[:-1], atol=1e-12)  # one row down
    np.testing.assert_array_equal(moved[0], 0.0)  # background comes in
    half = os_.affine_about_centre(img, 0.0, 2.0, (0, 0))  # zoomed in: the centre pixels spread out
    assert not np.allclose(half, img)


def test_augmented_batches_are_the_same_episodes_with_jittered_drawings(monkeypatch):
    """augment = K: each image of a training episode is its drawing or one of K jittered copies made once; the
    classes, drawings and labels are those of the plain batch (a separate stream), and the data fingerprint
    changes only when augmenting."""
    classes, config = _toy_classes(), EpisodeConfig()
    plain = os_.EpisodeBatches(classes, config)
    aug = os_.EpisodeBatches(classes, config, augment=2, augment_seed=4)
    assert os_.EpisodeBatches(classes, config, augment=0).fingerprint() == plain.fingerprint()
    assert aug.fingerprint() != plain.fingerprint()
    assert aug.fingerprint() != os_.EpisodeBatches(classes, config, augment=2, augment_seed=5).fingerprint()
    monkeypatch.setattr(os_, "image_patches", lambda *a: pytest.fail("patches recomputed in a batch"))
    x0, y0 = plain.batch(1, 3, 32)
    x1, y1 = aug.batch(1, 3, 32)
    np.testing.assert_array_equal(y0, y1)
    variants = np.concatenate([v.reshape(3, -1, config.n_patches * config.token_dim)
                               for v in aug.patches.values()], axis=1)  # (3 variants, all drawings, ...)
    # same labels and positions: the token difference is (copy - drawing) of one drawing, or 0 for the drawing
    change = (x1 - x0).transpose(0, 2, 1).reshape(32, 3, -1)
    possible = np.concatenate([np.zeros((1, change.shape[-1])), (variants[1:] - variants[0]).reshape(
        -1, change.shape[-1])])
    gaps = np.abs(change.reshape(-1, 1, change.shape[-1]) - possible[None]).max(axis=-1).min(axis=1)
    assert gaps.max() < 1e-12, "an augmented image is neither its drawing nor one of its copies"
    assert 0.4 < np.mean(np.abs(change).max(axis=-1) > 0) < 0.9  # about 2 in 3 images are copies
    with pytest.raises(ValueError, match="augment must be an int >= 0"):
        os_.EpisodeBatches(classes, config, augment=-1)


def test_patch_correlation_baseline():
    """Classes whose two drawings are identical: the query is a copy of its class's support, so the baseline is
    always right (reading a support's label wrongly would make it always wrong); on pure noise, near chance."""
    rng = np.random.default_rng(2)
    config = EpisodeConfig()
    twins = {f"c{k}": np.repeat(rng.random((1, 8, 8)), 2, axis=0) for k in range(6)}
    ep = os_.make_episodes(twins, 200, config, np.random.default_rng(1))
    np.testing.assert_array_equal(os_.patch_correlation_baseline(ep, config), ep.y)
    noise = {f"c{k}": rng.random((5, 8, 8)) for k in range(6)}
    ep = os_.make_episodes(noise, 400, config, np.random.default_rng(1))
    assert 0.4 < np.mean(os_.patch_correlation_baseline(ep, config) == ep.y) < 0.6
    with pytest.raises(ValueError, match="labels is None"):
        os_.patch_correlation_baseline(ep._replace(labels=None), config)


# ------------------------------------------------------------------------------------------------------------
# Omniglot reader on a generated fixture in the official layout
# ------------------------------------------------------------------------------------------------------------

def _png(rng, size=105, ink=None):
    if ink is None:
        bits = rng.random((size, size)) < 0.9  # white background (True), black strokes
    else:
        bits = np.full((size, size), not ink)
    buf = io.BytesIO()
    Image.fromarray(bits).convert("1").save(buf, format="PNG")
    return buf.getvalue()


def _background_zip(path, top, alphabets, rng, files=None):
    files = {} if files is None else files
    with zipfile.ZipFile(path, "w") as z:
        for alphabet, n_chars in alphabets.items():
            for c in range(1, n_chars + 1):
                for d in range(1, 4):
                    name = f"{alphabet}/character{c:02d}/{c:02d}{alphabet[:2]}_{d:02d}.png"
                    files.setdefault(name, _png(rng))
                    z.writestr(f"{top}/{name}", files[name])
    return files


def _runs_zip(path, n_runs, n_classes, rng, prefix_in_labels=True):
    with zipfile.ZipFile(path, "w") as z:
        for r in range(1, n_runs + 1):
            run = f"run{r:02d}"
            perm = rng.permutation(n_classes) + 1
            lines = []
            for k in range(1, n_classes + 1):
                z.writestr(f"{run}/training/class{k:02d}.png", _png(rng))
                z.writestr(f"{run}/test/item{k:02d}.png", _png(rng))
                p = f"{run}/" if prefix_in_labels else ""
                lines.append(f"{p}test/item{k:02d}.png {p}training/class{perm[k - 1]:02d}.png")
            z.writestr(f"{run}/class_labels.txt", "\n".join(lines) + "\n")


@pytest.fixture
def omniglot_dir(tmp_path):
    rng = np.random.default_rng(0)
    files = _background_zip(tmp_path / "images_background_small1.zip", "images_background_small1",
                            {"Greek": 3, "Korean": 2}, rng)
    # Greek appears in both small sets with the same drawings (as in the real release)
    _background_zip(tmp_path / "images_background_small2.zip", "images_background_small2",
                    {"Greek": 3, "Tagalog": 2}, rng, files)
    _runs_zip(tmp_path / "all_runs.zip", 2, 4, rng)
    return tmp_path


def test_omniglot_fixture_counts_and_merge(omniglot_dir):
    data = om.load_omniglot(omniglot_dir, image_size=16)
    assert sorted(data.background) == ["Greek/character01", "Greek/character02", "Greek/character03",
                                     "Korean/character01", "Korean/character02", "Tagalog/character01",
                                     "Tagalog/character02"]
    assert all(v.shape == (3, 16, 16) for v in data.background.values())  # merged, not doubled
    assert len(data.runs) == 8 and all(v.shape == (2, 16, 16) for v in data.runs.values())
    assert data.evaluation == {}
    assert [len(g) for g in data.run_groups()] == [4, 4]
    for v in list(data.background.values()) + list(data.runs.values()):
        assert v.min() >= 0 and v.max() <= 1


def test_omniglot_run_pairs_follow_class_labels(tmp_path):
    """The run class's second image is the test item that class_labels.txt names, with or without prefix."""
    rng = np.random.default_rng(1)
    _runs_zip(tmp_path / "all_runs.zip", 1, 3, rng, prefix_in_labels=False)
    data = om.load_omniglot(tmp_path, image_size=105)
    with zipfile.ZipFile(tmp_path / "all_runs.zip") as z:
        lines = z.read("run01/class_labels.txt").decode().split()
        for test_item, train_class in zip(lines[::2], lines[1::2]):
            want = 1 - np.asarray(Image.open(io.BytesIO(z.read("run01/" + test_item))).convert("L")) / 255.0
            key = "run01/" + train_class.split("/")[-1][:-4]
            np.testing.assert_array_equal(data.runs[key][1], want)


def test_twin_runs_are_merged_class_by_class(omniglot_dir):
    runs = om.load_omniglot(omniglot_dir, 16).runs
    assert om.twin_runs(runs) == [("run01", "run02")]
    chars, groups = om.merge_run_twins(runs)
    assert groups == [sorted(chars)] and len(chars) == 4
    for k in range(1, 5):
        merged = chars[f"runs01+02/class{k:02d}"]
        np.testing.assert_array_equal(merged, np.concatenate([runs[f"run01/class{k:02d}"],
                                                              runs[f"run02/class{k:02d}"]]))
    # an unpaired run keeps its classes
    lone = {k.replace("run02", "run03"): v for k, v in runs.items()}
    chars, groups = om.merge_run_twins(lone)
    assert len(chars) == 8 and [len(g) for g in groups] == [4, 4]


def test_omniglot_inverts_strokes(tmp_path):
    with zipfile.ZipFile(tmp_path / "images_background.zip", "w") as z:
        z.writestr("images_background/A/character01/a_01.png", _png(None, ink=True))   # all black = ink
        z.writestr("images_background/A/character01/a_02.png", _png(None, ink=False))  # all white = paper
    data = om.load_omniglot(tmp_path, image_size=8)
    np.testing.assert_array_equal(data.background["A/character01"][0], 1.0)
    np.testing.assert_array_equal(data.background["A/character01"][1], 0.0)


def test_omniglot_unpacked_folders_equal_zips(omniglot_dir, tmp_path_factory):
    unpacked = tmp_path_factory.mktemp("unpacked")
    for name in ("images_background_small1", "images_background_small2"):
        with zipfile.ZipFile(omniglot_dir / f"{name}.zip") as z:
            z.extractall(unpacked)
    with zipfile.ZipFile(omniglot_dir / "all_runs.zip") as z:
        z.extractall(unpacked / "all_runs")
    a, b = om.load_omniglot(omniglot_dir, 8), om.load_omniglot(unpacked, 8)
    for part in ("background", "runs"):
        da, db = getattr(a, part), getattr(b, part)
        assert sorted(da) == sorted(db)
        for k in da:
            np.testing.assert_array_equal(da[k], db[k])


def test_omniglot_dataset_from_fixture(omniglot_dir):
    config = EpisodeConfig(image_size=16, patch_size=8)
    d = src.oneshot_dataset("omniglot", omniglot_dir, n_train=30, n_test=20, config=config, within_groups=True)
    assert d.train.x.shape == (30, 64, 12) and d.test.x.shape == (20, 64, 12)
    assert not set(d.train.classes.ravel()) & set(d.test.classes.ravel())
    # the fixture's two runs are twins: merged into 4 characters of one group
    assert d.test_classes == tuple(f"runs01+02/class{k:02d}" for k in range(1, 5))
    for c0, c1 in d.test.classes:  # two different characters of one group
        assert c0 != c1 and c0.split("/")[0] == c1.split("/")[0]
    split = src.DATA_SOURCES["omniglot"](omniglot_dir, 16)
    assert set(split.validation) == {"Tagalog/character01", "Tagalog/character02"}  # a held-out alphabet
    assert not {k.split("/")[0] for k in split.train} & {"Tagalog"}


def _write(path, name, data):
    with zipfile.ZipFile(path / name, "w") as z:
        for member, payload in data.items():
            z.writestr(member, payload)


def _bad_size(tmp):
    _write(tmp, "images_background.zip", {"images_background/A/character01/a_01.png": _png(None, 50, True)})


def _bad_layout(tmp):
    _write(tmp, "images_background.zip", {"images_background/A/a_01.png": _png(None, ink=True)})


def _bad_labels(tmp):
    _write(tmp, "all_runs.zip", {"run01/class_labels.txt": "item01 class01\n",
                                 "run01/training/class01.png": _png(None, ink=True)})


def _no_runs_file(tmp):
    _write(tmp, "all_runs.zip", {"run01/training/class01.png": _png(None, ink=True)})


def _not_a_zip(tmp):
    (tmp / "images_background.zip").write_bytes(b"not a zip")


@pytest.mark.parametrize("make, match", [
    (_bad_size, "has size 50x50; expected 105x105"),
    (_bad_layout, "unexpected layout, found"),
    (_bad_labels, "expected .*test/itemKK.png"),
    (_no_runs_file, "found no runNN/class_labels.txt"),
    (_not_a_zip, "not a readable zip"),
])
def test_omniglot_bad_files_raise(tmp_path, make, match):
    make(tmp_path)
    with pytest.raises(ValueError, match=match):
        om.load_omniglot(tmp_path)


def test_omniglot_missing_folder_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; expected a folder with .*all_runs.zip"):
        om.load_omniglot(tmp_path / "nowhere")
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"holds none of the Omniglot files; expected .*found \['readme"):
        om.load_omniglot(tmp_path)


def test_omniglot_dataset_needs_novel_classes(tmp_path):
    _background_zip(tmp_path / "images_background.zip", "images_background", {"A": 2}, np.random.default_rng(0))
    with pytest.raises(ValueError, match="need at least 3 background alphabets"):
        src.oneshot_dataset("omniglot", tmp_path, n_train=4, n_test=4)
    _background_zip(tmp_path / "images_background.zip", "images_background", {"A": 2, "B": 2, "C": 2},
                    np.random.default_rng(0))
    with pytest.raises(ValueError, match="no novel test classes"):
        src.oneshot_dataset("omniglot", tmp_path, n_train=4, n_test=4)


# ------------------------------------------------------------------------------------------------------------
# the real data
# ------------------------------------------------------------------------------------------------------------

@pytest.mark.skipif(not REAL_OMNIGLOT.is_dir(), reason=f"Omniglot data not found at {REAL_OMNIGLOT} (the shared "
                    "data folder beside the repository)")
def test_real_omniglot():
    data = om.load_omniglot(REAL_OMNIGLOT, image_size=16)
    # small1: 136 characters (5 alphabets), small2: 156; Greek (24) + Latin (26) are in both -> 242 classes
    assert len(data.background) == 242
    assert {len(v) for v in data.background.values()} == {20}
    assert len(data.runs) == 400 and len(data.run_groups()) == 20
    assert {a.split("/")[0] for a in data.background} == {"Balinese", "Early_Aramaic", "Greek", "Korean", "Latin",
                                                         "Japanese_(katakana)", "Sanskrit", "Tagalog"}
    train_imgs = {v.tobytes() for imgs in data.background.values() for v in imgs}
    assert not any(v.tobytes() in train_imgs for imgs in data.runs.values() for v in imgs)
    d = src.oneshot_dataset("omniglot", REAL_OMNIGLOT, n_train=100, n_test=100, config=os_.OMNIGLOT_CONFIG)
    assert d.train.x.shape == (100, 64, 12) and d.test.x.shape == (100, 64, 12)
    assert not set(d.train_classes) & set(d.test_classes)
    assert np.all(np.isfinite(d.train.x)) and np.sum(d.test.y == 1) == 50
    # runs 2j-1 and 2j hold the same characters, class by class (the basis of merge_run_twins)
    runs = om.load_omniglot(REAL_OMNIGLOT, image_size=32).runs
    twins = om.twin_runs(runs)
    assert twins == [(f"run{2 * j + 1:02d}", f"run{2 * j + 2:02d}") for j in range(10)]
    assert max(om.twin_rank(runs, a, b) for a, b in twins) < 6.0
    others = [(f"run{i:02d}", f"run{i + 2:02d}") for i in range(1, 18, 4)]
    assert min(om.twin_rank(runs, a, b) for a, b in others) > 6.0
    split = src.DATA_SOURCES["omniglot"](REAL_OMNIGLOT, 16)
    assert len(split.test) == 200 and [len(g) for g in split.test_groups] == [20] * 10
    assert {len(v) for v in split.test.values()} == {4}
