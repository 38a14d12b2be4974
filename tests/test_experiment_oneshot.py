"""The one-shot experiment (Fig. 3) end to end in its quick configuration: results file, figures, data splits,
head analyses recomputed from the checkpoint, resume, and the error for a missing Omniglot folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from attnpaths._src import training as tr
from attnpaths._src.tasks.oneshot import default_omniglot_dir
from attnpaths.experiments import oneshot as osx
from attnpaths.experiments.io import _to_jsonable as _jsonable
from attnpaths.experiments.io import read_json

FIGURES = ("accuracy_vs_width.png", "order_parameters.png", "alignment.png", "head_scores.png", "pruning.png")
OMNIGLOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "omniglot"
if not OMNIGLOT.is_dir():
    OMNIGLOT = default_omniglot_dir() or OMNIGLOT


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("oneshot_quick")
    lines = []
    returned = osx.run_oneshot("digits", out=out, quick=True, log=lines.append)
    results = read_json(out / "results.json")  # every check reads the stored file
    assert _strip(json.loads(json.dumps(_jsonable(returned)))) == _strip(results)
    return out, results, lines


@pytest.fixture(scope="module")
def episodes():
    return osx.build_episodes(osx.oneshot_settings("digits", quick=True))


@pytest.fixture(scope="module")
def params(quick_run):
    out, _results, _ = quick_run
    return tr.load_checkpoint(out / "checkpoint.npz").params


def _strip(obj):
    """Drop wall-clock fields (timings, seconds) and per-call bookkeeping for comparisons."""
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items()
                if k not in ("timings", "last_call") and "seconds" not in k}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def test_quick_run_writes_results_and_figures(quick_run):
    out, _results, _ = quick_run
    stored = read_json(out / "results.json")
    assert stored == json.loads(json.dumps(stored))  # plain JSON
    for key in ("inputs", "gd", "theory", "choices", "gp", "samples", "order_parameters", "alignment", "heads",
                "timings", "completed"):
        assert key in stored, key
    assert set(osx.STAGES) - {"ood"} <= set(stored["completed"])
    inp = stored["inputs"]
    for key in ("data", "sizes", "seeds", "architecture", "train_config", "theory", "classes", "settings"):
        assert key in inp, key
    s = osx.oneshot_settings("digits", quick=True)
    assert inp["theory"]["widths"] == list(s.widths) and inp["theory"]["temperatures"] == list(s.temperatures)
    # one row per (N, T), each converged or carrying its error
    rows = stored["theory"]["solutions"]
    assert {(r["N"], r["T"]) for r in rows} == {(N, T) for N in s.widths for T in s.temperatures}
    assert all(r["converged"] or r["error"] for r in rows)
    # U at the smallest width in full (16 x 16)
    for U in stored["theory"]["U_smallest_width"].values():
        assert U is None or np.asarray(U[0]).shape == (16, 16)
    # T choices come from the grid and point at the stored rows
    for c in stored["choices"]["per_width"]:
        for rule, acc in (("T_validation", "test_accuracy_validation_T"), ("T_evidence", "test_accuracy_evidence_T")):
            row = next(r for r in rows if r["N"] == c["N"] and r["T"] == c[rule])
            assert row["test_accuracy"] == c[acc]
        conv = [r for r in rows if r["N"] == c["N"] and r["converged"]]
        assert c["action_evidence"] == min(r["action"] for r in conv)
        assert c["validation_accuracy"] == max(r["validation_accuracy"] for r in conv)
    o = stored["order_parameters"]
    assert np.asarray(o["theory"]).shape == np.asarray(o["sampled"]).shape == np.asarray(o["gd"]).shape == (16, 16)
    assert np.max(np.abs(o["gd"])) == pytest.approx(1.0)
    assert o["labels"][:2] == ["1,1", "1,2"]
    assert len(stored["alignment"]["finite_width"]) == len(stored["alignment"]["gp"]) == 50
    samp = stored["samples"]
    assert samp["n_draws"] >= 4 and 0 <= samp["accuracy"] <= 1 and samp["relative_error_mean"] >= 0
    for name in FIGURES:
        assert (out / name).stat().st_size > 5000, name
    assert not (out / "ood_accuracy.png").exists()


def test_validation_and_test_classes_are_novel(quick_run, episodes):
    _, results, _ = quick_run
    classes = results["inputs"]["classes"]
    train, val, test = (set(classes[k]) for k in ("train", "validation", "test"))
    assert train and val and test
    assert not train & val and not train & test and not val & test
    # and the episodes really use those classes
    e = episodes
    assert set(e.gd_train.classes.ravel()) <= train and set(e.theory_train.classes.ravel()) <= train
    assert set(e.validation.classes.ravel()) <= val
    assert set(e.test.classes.ravel()) <= test
    assert results["inputs"]["sizes"]["theory_train"] == len(e.theory_train.y)
    assert np.sum(e.theory_train.y > 0) == np.sum(e.theory_train.y < 0)


def test_single_head_drops_match_checkpoint(quick_run, params, episodes):
    _, results, _ = quick_run
    h = results["heads"]
    single = tr.single_head_drop_accuracy(params, episodes.test.x, episodes.test.y)
    base = tr.accuracy(params, episodes.test.x, episodes.test.y)
    np.testing.assert_array_equal(np.asarray(h["single_head_accuracy_matrix"]), single)
    assert h["base_accuracy"] == base == results["gd"]["test_accuracy"]
    for o, acc, drop in zip(h["order"], h["accuracy_without"], h["accuracy_drop"]):
        assert acc == single[o["layer"], o["head"]]
        assert drop == pytest.approx(base - acc, abs=1e-15)
    assert [o["label"] for o in h["order"]] == h["labels"]
    assert np.all(np.diff(h["score"]) >= 0) and max(h["score"]) == pytest.approx(1.0)


def test_pruning_curves(quick_run, params, episodes):
    _, results, _ = quick_run
    p = results["heads"]["pruning"]
    base = results["gd"]["test_accuracy"]
    assert p["score_ascending"][0] == p["score_descending"][0] == base
    assert np.allclose(p["random_mean"][0], base) and p["n_random"] >= 10
    assert len(p["score_ascending"]) == 1 + sum(h - 1 for h in results["inputs"]["theory"]["heads"])
    assert np.all(np.isfinite(p["score_ascending"])) and np.all(np.isfinite(p["random_mean"]))
    # recompute the ascending curve directly from head masks
    label_to_head = {o["label"]: (o["layer"], o["head"]) for o in results["heads"]["order"]}
    order = [label_to_head[lab] for lab in p["orders"]["score_ascending"]]
    for k in (1, 3, len(p["k"]) - 1):
        mask = tr.head_mask_without(params, order[:k])
        assert tr.accuracy(params, episodes.test.x, episodes.test.y, mask) == p["score_ascending"][k]
    np.testing.assert_allclose(np.mean(p["random_curves"], axis=0), p["random_mean"])


def test_pruning_order_never_empties_a_layer():
    order = [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2), (1, 3)]
    got = osx.pruning_order(order, (4, 4))
    assert got == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (0, 3), (1, 3)]
    assert osx.pruning_order(got[::-1], (4, 4))[-2:] == [(1, 0), (0, 0)]


def test_spearman_matches_scipy(quick_run):
    _, results, _ = quick_run
    h = results["heads"]
    for key, values in (("spearman_score_vs_drop", h["score"]), ("spearman_gradient_vs_drop",
                                                                 h["gradient_importance"])):
        ref = spearmanr(values, h["accuracy_drop"])
        assert h[key]["rho"] == pytest.approx(ref.statistic, abs=1e-12)
        assert h[key]["p_value"] == pytest.approx(ref.pvalue, abs=1e-12)
    # the gradient importance is the one of the checkpoint, in the head-score order
    g = np.asarray(h["gradient_importance_matrix"])
    assert [g[o["layer"], o["head"]] for o in h["order"]] == h["gradient_importance"]


def test_resume_reuses_checkpoint_and_reproduces(quick_run, tmp_path):
    out, results, _ = quick_run
    copy = tmp_path / "resumed"
    shutil.copytree(out, copy)
    stored = read_json(copy / "results.json")
    # forget the analysis stages: they are recomputed from the checkpoint and the stored solutions
    for stage, key in (("choices", "choices"), ("samples", "samples"), ("order", "order_parameters"),
                       ("alignment", "alignment"), ("heads", "heads")):
        stored["completed"].remove(stage)
        del stored[key]
    (copy / "results.json").write_text(json.dumps(stored))
    for png in FIGURES:
        (copy / png).unlink()
    lines = []
    again = osx.run_oneshot("digits", out=copy, quick=True, resume=True, log=lines.append)
    assert again["last_call"]["gd_steps_trained"] == 0
    assert {"gd", "theory"} <= set(again["last_call"]["skipped_stages"])
    assert any("reusing the checkpoint" in line for line in lines)
    assert not any("gd: training" in line for line in lines)
    assert again["timings"]["gd"] == results["timings"]["gd"]  # the gd stage was not rerun
    assert _strip(read_json(copy / "results.json")) == _strip(read_json(out / "results.json"))
    for png in FIGURES:
        assert (copy / png).stat().st_size > 5000


def test_resume_refuses_other_inputs(quick_run, tmp_path):
    out, _, _ = quick_run
    copy = tmp_path / "other"
    shutil.copytree(out, copy)
    stored = read_json(copy / "results.json")
    stored["inputs"]["settings"]["seed"] = 123
    (copy / "results.json").write_text(json.dumps(stored))
    with pytest.raises(ValueError, match="other inputs"):
        osx.run_oneshot("digits", out=copy, quick=True, resume=True, log=lambda s: None)


def test_missing_omniglot_folder_is_a_clear_error(tmp_path):
    missing = tmp_path / "no_such_omniglot_folder"
    out = tmp_path / "out"
    with pytest.raises(FileNotFoundError, match="no_such_omniglot_folder"):
        osx.run_oneshot("omniglot", data_dir=missing, out=out, quick=True, log=lambda s: None)
    assert not out.exists()
    empty = tmp_path / "empty_omniglot"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="empty_omniglot"):
        osx.run_oneshot("omniglot", data_dir=empty, out=out, quick=True, log=lambda s: None)
    with pytest.raises(ValueError, match="digits"):
        osx.run_oneshot("mnist", out=out, quick=True, log=lambda s: None)


@pytest.mark.slow
@pytest.mark.skipif(not OMNIGLOT.is_dir(), reason="no Omniglot data folder")
def test_quick_omniglot_run(tmp_path):
    out = tmp_path / "omni"
    results = osx.run_oneshot("omniglot", data_dir=OMNIGLOT, out=out, quick=True, log=lambda s: None)
    classes = results["inputs"]["classes"]
    train, val, test = (set(classes[k]) for k in ("train", "validation", "test"))
    assert not train & val and not train & test and not val & test
    assert {c.split("/")[0] for c in val} == set(results["inputs"]["validation_alphabets"])
    assert not {c.split("/")[0] for c in val} & {c.split("/")[0] for c in train}
    ood = results["ood"]
    assert 0 <= ood["gd_accuracy"] <= 1 and 0 <= ood["gp_accuracy"] <= 1
    assert len(ood["theory"]) == len(results["inputs"]["theory"]["widths"])
    for name in FIGURES + ("ood_accuracy.png",):
        assert (out / name).stat().st_size > 5000, name
