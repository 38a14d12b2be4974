"""`attnpaths oneshot-strength`: the one-shot claim at checkpoints of the training (issue 15 item 2)."""

import json

import numpy as np
import pytest

from attnpaths._src import training as tr
from attnpaths.experiments.oneshot import PRESETS
from attnpaths.experiments.oneshot.data import build_episodes
from attnpaths.experiments.oneshot.run import run_oneshot
from attnpaths.experiments.oneshot.strength import (StrengthSettings, _trend, pick_steps, run_strength,
                                                    strength_verdict)
from attnpaths.experiments.oneshot.train import TrainedNetwork
from attnpaths.experiments.runner import output_from_record
from attnpaths._src.store import load_record

SMALL = {"train_steps": 200, "eval_every": 50, "n_validation": 200, "n_eval": 200, "n_test": 200, "n_ood": 50,
         "n_theory_train": 80, "temperatures": (0.5, 1.0), "extra_temperatures": (), "n_bootstrap": 100,
         "progress": False}


@pytest.mark.parametrize("val, n, want", [
    ([0.5, 0.6, 0.7, 0.8], 4, [1, 2, 3, 4]),
    ([0.5, 0.8, 0.6, 0.7], 3, [1, 2]),  # the curve jumps to its best: the middle level is met at the best
    ([0.5, 0.55, 0.65, 0.8, 0.8, 0.7], 4, [1, 3, 4]),  # levels .5, .6, .7, .8: .6 and .7 both first met at step 3
    ([0.6, 0.5, 0.9, 0.9], 2, [1, 3]),  # the earliest best
    ([0.5, 0.8, 0.82, 0.84, 0.9], 4, [1, 2, 3, 5]),  # .633 and .767 first met at step 2: .767 takes step 3
    ([0.5, 0.9], 4, [1, 2]),  # only two validations
    ([0.9, 0.5, 0.6], 3, [1]),  # the first validation is the best
])
def test_pick_steps(val, n, want):
    assert pick_steps({"step": list(range(1, len(val) + 1)), "val_accuracy": val}, n) == want


def test_pick_steps_refuses_an_empty_curve():
    with pytest.raises(ValueError, match="never validated"):
        pick_steps({"step": [], "val_accuracy": []}, 3)


def test_trend_is_least_squares_with_the_t_interval_of_the_mean():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 0.7, 12)
    y = 0.3 * x - 0.1 + 0.01 * rng.standard_normal(12)
    t = _trend(x, y, 0.838, 0.95)
    b, a = np.polyfit(x, y, 1)
    assert t["slope"] == pytest.approx(b, rel=1e-10) and t["intercept"] == pytest.approx(a, rel=1e-10)
    X = np.column_stack([np.ones_like(x), x])
    cov = np.linalg.inv(X.T @ X) * np.sum((y - X @ [a, b]) ** 2) / (len(x) - 2)
    v = np.array([1.0, 0.838])
    half = 2.2281388519649385 * np.sqrt(v @ cov @ v)  # t_0.975 with 10 degrees of freedom
    assert t["value_at"] == pytest.approx(a + b * 0.838, rel=1e-10)
    np.testing.assert_allclose(t["value_at_ci"], [a + b * 0.838 - half, a + b * 0.838 + half], rtol=1e-8)
    np.testing.assert_allclose(t["slope_ci"], [b - 2.2281388519649385 * np.sqrt(cov[1, 1]),
                                               b + 2.2281388519649385 * np.sqrt(cov[1, 1])], rtol=1e-8)
    assert t["extrapolated"] and not _trend(x, y, 0.6, 0.95)["extrapolated"]
    assert _trend(x[:2], y[:2], 0.8, 0.95)["slope"] is None


def test_keep_snapshots_is_required():
    with pytest.raises(ValueError, match="keep_snapshots"):
        StrengthSettings(keep_snapshots=False)


@pytest.fixture(scope="module")
def strength_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("strength")
    s = StrengthSettings().updated(PRESETS["quick"].values).updated(
        {**SMALL, "seeds": (0,), "checkpoints": 3, "widths": (10.0, 1000.0)})
    return s, out, run_strength(s, out, log=lambda m: None)


def test_every_checkpoint_is_the_network_at_that_step(strength_run):
    """Each point's GD accuracies are those of the weights the training kept at its step (recomputed from the
    stage record), the steps are `pick_steps` of the stored curve, and the table reads the points."""
    s, out, r = strength_run
    assert not list((out / "stages").glob("*.partial*")), "the training's partial progress (snapshots) is removed"
    rec = load_record(out / "stages" / "train.s0.npz")
    net = output_from_record(TrainedNetwork, rec.header["output"], rec.arrays)
    steps = pick_steps(net.curve, 3)
    assert [p["step"] for p in r["points"]] == steps and len(steps) >= 2
    e = build_episodes(s.run_settings(0))
    for p in r["points"]:
        w = net.at_step(p["step"]).weights()
        assert p["gd_accuracy"]["test_cross"] == tr.gd_accuracy(w, e.test["cross"].x, e.test["cross"].y)
    accs = [p["gd_accuracy"]["test_cross"] for p in r["points"]]
    assert len(set(accs)) > 1, "the checkpoints are one network"
    rows = r["table"]["cross"]["rows"]
    assert [row["gd_accuracy"] for row in rows] == accs
    for p, row in zip(r["points"], rows):
        gp = next(m for m in p["claim"]["cross"]["methods"] if m["kind"] == "gp")
        th = next(m for m in p["claim"]["cross"]["methods"] if m["kind"] == "theory")
        assert row["gp_accuracy"] == gp["accuracy"]["mean"]
        assert row["theory"]["10"]["delta"] == pytest.approx(th["accuracy"]["mean"] - gp["accuracy"]["mean"])
    assert 0.5 < r["baseline"]["test_cross"] < 0.9
    trends = r["table"]["cross"]["trends"]
    assert len(rows) >= 3, "too few checkpoints for a trend"
    # least squares is linear in y: the control's slope is the difference of the two slopes
    assert trends["N=10 minus N=1000"]["slope"] == pytest.approx(
        trends["delta N=10"]["slope"] - trends["delta N=1000"]["slope"], abs=1e-9)
    with pytest.raises(ValueError, match="kept snapshots"):
        net.at_step(7)


def test_the_best_checkpoint_gives_the_one_shot_runs_claim(strength_run, tmp_path):
    """At the best step the point is the one-shot run's own claim on the same settings (same pipeline)."""
    s, _, r = strength_run
    one = run_oneshot(s.run_settings(0), tmp_path / "one", log=lambda m: None)
    best = next(p for p in r["points"] if p["step"] == one["gd"]["best_step"])
    assert best["gd_accuracy"] == one["gd"]["accuracy"]
    assert json.dumps(best["claim"], sort_keys=True) == json.dumps(one["claim"], sort_keys=True)


def test_resumed_study_loads_every_stage(strength_run):
    s, out, r = strength_run
    lines = []
    again = run_strength(s, out, resume=True, log=lines.append)
    same = lambda a, b: json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)  # NaN-aware
    assert same(again["points"], r["points"]) and same(again["table"], r["table"])
    assert sum("done before" in line for line in lines) == 1 + len(r["points"])
    verdict = strength_verdict(r["table"], s.widths)
    assert ("slope" in verdict) == (len(r["points"]) >= 3) and ("too few" in verdict) == (len(r["points"]) < 3)
