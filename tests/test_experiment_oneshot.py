"""The one-shot experiment (Fig. 3) end to end in its quick preset: results file, figures, stage records, the
validation-only temperature rule, headroom and claim recomputed from the stored predictions, head analyses
recomputed from the trained weights, resume, and the errors for changed settings and missing data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binom, spearmanr

import attnpaths as ap
from attnpaths._src import training as tr
from attnpaths._src.store import jsonable
from attnpaths._src.tasks.omniglot import default_omniglot_dir
from attnpaths._src.tasks.sources import VALIDATION_ALPHABETS
from attnpaths.experiments.io import read_json
from attnpaths.experiments.oneshot import PRESETS, OneShotSettings, run_oneshot
from attnpaths.experiments.oneshot.analyses import pruning_order
from attnpaths.experiments.oneshot.compare import Headroom, choose_on_test
from attnpaths.experiments.oneshot.data import build_episodes
from attnpaths.experiments.oneshot.theory import TheoryGrid, features, theory_spec
from attnpaths.experiments.oneshot.train import TrainedNetwork
from attnpaths.experiments.oneshot.study import (SeedRun, summarize_samples, summarize_study,
                                                  summarize_test_chosen)
from attnpaths.experiments.oneshot.figures import oneshot_figures, study_figures
from attnpaths.experiments.runner import Runner, output_from_record

FIGURES = ("accuracy_vs_width.png", "claim.png", "training.png", "order_parameters.png", "alignment.png",
           "head_scores.png", "pruning.png")
OMNIGLOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "omniglot"
if not OMNIGLOT.is_dir():
    OMNIGLOT = default_omniglot_dir() or OMNIGLOT
QUICK = OneShotSettings().updated(PRESETS["quick"].values)


def _need_omniglot():
    if not OMNIGLOT.is_dir():
        pytest.skip("the quick preset reads Omniglot; no data folder")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    _need_omniglot()
    out = tmp_path_factory.mktemp("oneshot_quick")
    lines = []
    returned = run_oneshot(QUICK, out, log=lines.append)
    oneshot_figures(returned, out)
    results = read_json(out / "results.json")  # every check reads the stored file
    assert _strip(json.loads(json.dumps(jsonable(returned)))) == _strip(results)
    return out, results, lines


@pytest.fixture(scope="module")
def stored(quick_run):
    """The stage outputs of the quick run, loaded through the runner's record format."""
    out = quick_run[0]
    run = Runner(out, "oneshot", QUICK, resume=True)
    return (run.load("train", TrainedNetwork), run.load("theory.d0", TheoryGrid), run.load("headroom.d0", Headroom))


@pytest.fixture(scope="module")
def episodes():
    _need_omniglot()
    return build_episodes(QUICK)


def _strip(obj):
    """Drop wall-clock fields (timings, seconds) for comparisons."""
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k != "timings" and "second" not in k}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def test_quick_run_writes_results_figures_and_stage_records(quick_run):
    out, results, _ = quick_run
    for key in ("inputs", "gd", "theory", "choices", "headroom", "claim", "verdict", "samples",
                "order_parameters", "alignment", "heads", "settings"):
        assert key in results, key
    assert sorted(p.name for p in (out / "stages").iterdir()) == sorted(
        f"{n}.npz" for n in ("train", "gd", "theory.d0", "headroom.d0", "claim.d0", "samples", "order", "ood",
                             "alignment", "heads"))
    assert results["settings"] == QUICK.to_dict()
    grid = results["theory"]
    assert {(r["N"], r["T"]) for r in grid["solutions"]} == {(N, T) for N in grid["widths"]
                                                             for T in grid["temperatures"]}
    assert all(r["converged"] or r["error"] for r in grid["solutions"])
    c = results["gd"]["curve"]
    assert c["step"] == [100.0 * k for k in range(1, 7)] and results["gd"]["best_step"] in c["step"]
    for name in FIGURES + ("ood_accuracy.png",):
        assert (out / name).stat().st_size > 5000, name
    assert not list(out.glob("stages/*.partial.npz")) and not list(out.rglob(".*.tmp"))


def test_quick_network_learns(quick_run):
    """The quick preset's network is a real one (79.0% measured on cross test episodes), not chance."""
    acc = quick_run[1]["gd"]["accuracy"]
    assert acc["test_cross"] >= 0.70 and acc["validation"] >= 0.70


def test_temperatures_are_chosen_on_validation_only(quick_run, stored):
    """Each width's T maximises the VALIDATION accuracy of the stored predictions (recomputed here), and the grid
    was extended upward until the choice is interior or the extra temperatures ran out."""
    _, results, _ = quick_run
    _, grid, _ = stored
    y_val = build_episodes(QUICK).validation.y
    Ts = grid.temperatures
    for i, c in enumerate(results["choices"]["per_width"]):
        accs = [np.mean(np.sign(grid.val_mean[i, j]) == y_val) for j in range(len(Ts))]
        assert c["validation_accuracy"] == max(accs)
        assert c["T_validation"] == Ts[int(np.argmax(accs))] or accs[Ts.index(c["T_validation"])] == max(accs)
    added = results["choices"]["added_temperatures"]
    assert Ts == sorted(set(QUICK.temperatures) | set(added))
    top_chosen = any(c["T_validation"] == Ts[-1] for c in results["choices"]["per_width"]) or \
        results["choices"]["gp"]["T_validation"] == Ts[-1]
    assert not top_chosen or added == sorted(QUICK.extra_temperatures)


def test_test_chosen_rule_on_a_small_grid():
    """The authors' rule by hand on a 3 widths x 4 temperatures grid: a tie goes to the lower T, an unsolved
    point (NaN) is skipped, a width without any solution has no row values."""
    acc = np.array([[0.60, 0.70, 0.70, 0.65],
                    [np.nan, 0.55, 0.50, 0.80],
                    [np.nan] * 4])
    gp = np.array([0.62, 0.66, 0.66, 0.61])
    t = choose_on_test(acc, gp, [10.0, 100.0, 1000.0], [0.1, 0.5, 1.0, 2.0])
    assert t["gp"] == {"T": 0.5, "accuracy": 0.66}
    assert t["per_width"][0] == {"N": 10.0, "T": 0.5, "accuracy": 0.70, "delta": pytest.approx(0.04)}
    assert t["per_width"][1] == {"N": 100.0, "T": 2.0, "accuracy": 0.80, "delta": pytest.approx(0.14)}
    assert t["per_width"][2] == {"N": 1000.0, "T": None, "accuracy": None, "delta": None}
    with pytest.raises(ValueError, match=r"theory_accuracy must be \(n_N, n_T\) = \(2, 4\)"):
        choose_on_test(acc, gp, [10.0, 100.0], [0.1, 0.5, 1.0, 2.0])


def test_test_chosen_table_is_the_best_test_accuracy_of_the_grid(quick_run, stored, episodes):
    """The optimistic table: every grid point's test accuracy equals a direct prediction at it (two checked),
    its choice is the grid's maximum, and it is never below the validation-chosen accuracy of the claim."""
    _, results, lines = quick_run
    net, grid, _ = stored
    t = results["choices"]["test_chosen"]
    assert "optimistic" in t["label"] and any(line.startswith("optimistic, T chosen on the test") for line in lines)
    f = features(QUICK, episodes, net, 0)
    spec = theory_spec(QUICK)
    for protocol, k in (("cross", 0), ("within", 1)):
        tab = t["protocols"][protocol]
        by_T = np.array([[np.nan if v is None else v for v in row] for row in tab["accuracy_by_T"]["theory"]])
        x, y = f.sets[f"test_{protocol}"][:2]
        N, T = grid.widths[k], grid.temperatures[-1 - k]
        if grid.row(N, T)["converged"]:
            m = ap.predict(spec.with_width(N).replace(temperature=T), f.train_x, f.train_y, x, grid.U(N, T)[0]).mean
            assert by_T[k, len(grid.temperatures) - 1 - k] == np.mean(np.sign(m) == y)
        gp = ap.predict(spec.replace(temperature=grid.temperatures[k]), f.train_x, f.train_y, x).mean
        assert tab["accuracy_by_T"]["gp"][k] == np.mean(np.sign(gp) == y)
        assert tab["gp"]["accuracy"] == max(tab["accuracy_by_T"]["gp"])
        claim = {r["N"]: r for r in results["claim"][protocol]["methods"] if r["kind"] == "theory"}
        gp_claim = next(r for r in results["claim"][protocol]["methods"] if r["kind"] == "gp")
        assert tab["gp"]["accuracy"] >= gp_claim["accuracy"]["mean"] - 1e-12
        for i, row in enumerate(tab["per_width"]):
            assert row["accuracy"] == np.nanmax(by_T[i])
            if row["N"] in claim:
                assert row["accuracy"] >= claim[row["N"]]["accuracy"]["mean"] - 1e-12


def _table(deltas, gp):
    return {"protocols": {"cross": {"gp": {"T": 1.0, "accuracy": gp}, "per_width": [
        {"N": 10.0, "T": 0.5, "accuracy": gp + deltas[0], "delta": deltas[0]},
        {"N": 100.0, "T": None if deltas[1] is None else 0.5, "accuracy": None if deltas[1] is None else gp,
         "delta": deltas[1]}]}}}


def test_study_summarises_the_optimistic_table_over_seeds_and_draws(quick_run, tmp_path):
    """2 seeds x 2 draws by hand: mean of all four, std of the two seed means; a width unsolved in one draw is
    left out; a run without the table (older) gives None; the study figures draw it."""
    runs = [SeedRun(0, {}, [{"choices": {"test_chosen": _table([0.02, 0.0], 0.6)}},
                            {"choices": {"test_chosen": _table([0.04, None], 0.7)}}]),
            SeedRun(1, {}, [{"choices": {"test_chosen": _table([-0.02, 0.0], 0.5)}},
                            {"choices": {"test_chosen": _table([0.0, 0.0], 0.6)}}])]
    t = summarize_test_chosen(runs, "cross")
    assert "optimistic" in t["label"] and [r["N"] for r in t["per_width"]] == [10.0]
    d = t["per_width"][0]["delta_accuracy"]
    assert d["mean"] == pytest.approx(0.01) and d["std_across_seeds"] == pytest.approx(np.std([0.03, -0.01], ddof=1))
    assert d["n_positive"] == 2 and d["n"] == 4
    assert t["gp_accuracy"]["mean"] == pytest.approx(0.6)
    assert summarize_test_chosen(runs + [SeedRun(2, {}, [{"choices": {}}])], "cross") is None
    results = quick_run[1]
    one = {"claim": results["claim"], "choices": results["choices"], "verdict": results["verdict"]}
    summary = summarize_study([SeedRun(0, {}, [one]), SeedRun(1, {}, [one])])
    assert summary["cross"]["test_chosen"]["per_width"][0]["delta_accuracy"]["mean"] == pytest.approx(
        results["choices"]["test_chosen"]["protocols"]["cross"]["per_width"][0]["delta"])
    files = study_figures({"summary": summary, "seeds": [0, 1], "theory_draws": 1}, tmp_path)
    assert all(f.stat().st_size > 5000 for f in files)


def test_headroom_predictions_are_what_they_claim(quick_run, stored, episodes):
    """GP, the kernel with U_GD and the theory rows equal direct predictions with the stated U and T."""
    _, results, _ = quick_run
    net, grid, head = stored
    f = features(QUICK, episodes, net, 0)
    spec = theory_spec(QUICK)
    methods = {m["kind"]: m for m in head.methods}
    gp = ap.predict(spec.replace(temperature=methods["gp"]["T"]), f.train_x, f.train_y, f.sets["test_cross"][0])
    np.testing.assert_allclose(head.mean[0][0], gp.mean, rtol=1e-10, atol=1e-12)
    U_gd = tr.gd_order_parameter(net.weights())
    U_gd = U_gd * 16 / np.trace(U_gd)
    k = [m["kind"] for m in head.methods].index("gp_kernel_U_GD")
    pred = ap.predict(spec.replace(temperature=head.methods[k]["T"]), f.train_x, f.train_y,
                      f.sets["test_within"][0], U_gd)
    np.testing.assert_allclose(head.mean[1][k], pred.mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(head.var[1][k], pred.var, rtol=1e-8, atol=1e-12)
    sub = [m["kind"] for m in head.methods].index("gp_subset")
    paths = head.methods[sub]["path_indices"]
    U_sub = np.diag(np.isin(np.arange(16), paths).astype(float))
    val = ap.predict(spec.replace(temperature=head.methods[sub]["T"]), f.train_x, f.train_y,
                     f.sets["validation"][0], U_sub)
    assert ap.accuracy(val.mean, f.sets["validation"][1]) == head.methods[sub]["validation_accuracy"]
    assert head.methods[sub]["validation_accuracy"] >= max(s["validation_accuracy"]
                                                           for s in head.methods[sub]["selection"])
    N, T = 10.0, results["choices"]["per_width"][0]["T_validation"]
    theory = ap.predict(spec.with_width(N).replace(temperature=T), f.train_x, f.train_y, f.sets["test_cross"][0],
                        grid.U(N, T)[0])
    row = next(i for i, m in enumerate(head.methods) if m.get("N") == N)
    np.testing.assert_allclose(head.mean[0][row], theory.mean, rtol=1e-10, atol=1e-12)


def test_claim_numbers_follow_from_the_predictions(quick_run, stored, episodes):
    """Delta, the McNemar p-value (an independent binomial sum) and the accuracies, from the stored predictions."""
    _, results, _ = quick_run
    _, _, head = stored
    for k, protocol in enumerate(("cross", "within")):
        y = episodes.test[protocol].y
        rows = results["claim"][protocol]["methods"]
        right = np.sign(head.mean[k]) == y
        for m, row in enumerate(rows):
            assert row["accuracy"]["mean"] == pytest.approx(right[m].mean(), abs=1e-15)
            assert row["accuracy"]["ci"][0] <= row["accuracy"]["ci"][1]
            assert row["mse"]["mean"] == pytest.approx(np.mean((head.mean[k][m] - y) ** 2), rel=1e-12)
            if m == 0:
                continue
            assert row["delta_accuracy"]["delta"] == pytest.approx(right[m].mean() - right[0].mean(), abs=1e-15)
            b, c = int(np.sum(right[m] & ~right[0])), int(np.sum(~right[m] & right[0]))
            p = 1.0 if b + c == 0 else min(1.0, 2 * binom.cdf(min(b, c), b + c, 0.5))
            assert row["mcnemar"]["p_value"] == pytest.approx(p, rel=1e-9)
    v = results["verdict"]["cross"]
    assert v["outcome"] in ("supported", "contradicted", "not resolved") and str(v["N"]) in str(v["text"]) + "10.0"


def test_order_parameters_are_the_trained_and_solved_ones(quick_run, stored):
    _, results, _ = quick_run
    net, grid, _ = stored
    o = results["order_parameters"]
    U_gd = tr.gd_order_parameter(net.weights())
    np.testing.assert_allclose(np.asarray(o["gd"]) * o["gd_scale"], U_gd, rtol=1e-12)
    np.testing.assert_allclose(o["theory"], grid.U(o["N"], o["T"])[0], rtol=1e-15)
    assert np.asarray(o["sampled"]).shape == (16, 16) and o["labels"][:2] == ["1,1", "1,2"]


def test_single_head_drops_match_the_weights(quick_run, stored, episodes):
    _, results, _ = quick_run
    params = stored[0].weights()
    x, y = episodes.test["cross"].x, episodes.test["cross"].y
    h = results["heads"]
    single = tr.single_head_drop_accuracy(params, x, y)
    base = tr.gd_accuracy(params, x, y)
    np.testing.assert_array_equal(np.asarray(h["single_head_accuracy_matrix"]), single)
    assert h["base_accuracy"] == base == results["gd"]["accuracy"]["test_cross"]
    for o, acc, drop in zip(h["order"], h["accuracy_without"], h["accuracy_drop"]):
        assert acc == single[o["layer"], o["head"]]
        assert drop == pytest.approx(base - acc, abs=1e-15)
    assert np.all(np.diff(h["score"]) >= 0)
    p = h["pruning"]
    label_to_head = {o["label"]: (o["layer"], o["head"]) for o in h["order"]}
    order = [label_to_head[lab] for lab in p["orders"]["score_ascending"]]
    for k in (1, 3, len(p["k"]) - 1):
        assert tr.gd_accuracy(params, x, y, tr.head_mask_without(params, order[:k])) == p["score_ascending"][k]
    np.testing.assert_allclose(np.mean(p["random_curves"], axis=0), p["random_mean"])
    for key, values in (("spearman_score_vs_drop", h["score"]), ("spearman_gradient_vs_drop",
                                                                 h["gradient_importance"])):
        ref = spearmanr(values, h["accuracy_drop"])
        assert h[key]["rho"] == pytest.approx(ref.statistic, abs=1e-12)


def test_pruning_order_never_empties_a_layer():
    order = [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2), (1, 3)]
    got = pruning_order(order, (4, 4))
    assert got == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (0, 3), (1, 3)]
    assert pruning_order(got[::-1], (4, 4))[-2:] == [(1, 0), (0, 0)]


def test_resume_loads_finished_stages_and_reproduces(quick_run, tmp_path):
    """Resume after the claim and analyses records were lost: training and theory are loaded, not rerun, and the
    results equal the uninterrupted run's."""
    out, results, _ = quick_run
    copy = tmp_path / "resumed"
    shutil.copytree(out, copy)
    for name in ("headroom.d0", "claim.d0", "samples", "order", "alignment", "heads"):
        (copy / "stages" / f"{name}.npz").unlink()
    (copy / "results.json").unlink()
    lines = []
    again = run_oneshot(QUICK, copy, resume=True, log=lines.append)
    assert any(line.startswith("train: done before") for line in lines)
    assert any(line.startswith("theory.d0: done before") for line in lines)
    assert not any("Newton steps" in line for line in lines)
    assert _strip(read_json(copy / "results.json")) == _strip(results)
    assert _strip(json.loads(json.dumps(jsonable(again)))) == _strip(results)


def test_sample_command_continues_the_draws_of_a_oneshot_run(quick_run, tmp_path):
    """`attnpaths sample DIR` works for a one-shot run with its defaults (the run's own sampling settings), and
    continues the stored Gibbs chains to more draws, however often it is run, rebuilding results.json from the
    stage records (a damaged results.json is not read)."""
    from attnpaths.cli import main

    out, results, _ = quick_run
    copy = tmp_path / "sampled"
    shutil.copytree(out, copy)
    (copy / "results.json").write_text('{"experiment": "oneshot", "cla')  # never read back: rebuilt from stages
    assert main(["sample", str(copy)]) == 0  # the run's chains, warm-up and seed: its draws are continued
    assert read_json(copy / "results.json")["samples"]["n_draws"] == results["samples"]["n_draws"] == 20
    assert _strip(read_json(copy / "results.json")) == _strip(results)
    args = ["sample", str(copy), "--n-samples", "24"]
    assert main(args) == 0
    assert main(args) == 0  # twice: nothing more to draw, not an error
    new = read_json(copy / "results.json")
    assert new["samples"]["n_draws"] == 24
    assert new["order_parameters"]["sampled"] == new["samples"]["U"]
    assert new["claim"] == results["claim"]
    assert (copy / "order_parameters.png").stat().st_size > 5000


def test_resume_refuses_other_settings(quick_run, tmp_path):
    out, _, _ = quick_run
    copy = tmp_path / "other"
    shutil.copytree(out, copy)
    with pytest.raises(ValueError, match=r"other settings \(seed: stored 0, now 3; train_steps: stored 600, "
                                         r"now 601\)"):
        run_oneshot(QUICK.updated({"seed": 3, "train_steps": 601}), copy, resume=True, log=lambda s: None)


def test_missing_omniglot_folder_is_a_clear_error(tmp_path):
    missing = tmp_path / "no_such_omniglot_folder"
    out = tmp_path / "out"
    settings = QUICK.updated({"data": "omniglot", "data_dir": str(missing)})
    with pytest.raises(FileNotFoundError, match="no_such_omniglot_folder"):
        run_oneshot(settings, out, log=lambda s: None)
    assert not out.exists()
    with pytest.raises(ValueError, match="setting 'data' must be one of digits, omniglot"):
        QUICK.updated({"data": "mnist"})


@pytest.mark.slow
@pytest.mark.skipif(not OMNIGLOT.is_dir(), reason="no Omniglot data folder")
def test_quick_omniglot_run(tmp_path):
    out = tmp_path / "omni"
    s = QUICK.updated({"data": "omniglot", "data_dir": str(OMNIGLOT), "image_size": 16, "patch_size": 8})
    results = run_oneshot(s, out, log=lambda s: None)
    oneshot_figures(results, out)
    classes = results["inputs"]["classes"]
    train, val, test = (set(classes[k]) for k in ("train", "validation", "test"))
    assert not train & val and not train & test and not val & test
    assert {c.split("/")[0] for c in val} == set(VALIDATION_ALPHABETS)
    assert all(c.startswith("runs") for c in test) and len(test) == 200
    ood = results["ood"]
    assert 0 <= ood["gd_accuracy"] <= 1 and 0 <= ood["gp_accuracy"] <= 1
    assert len(ood["theory"]) == len(results["theory"]["widths"])
    for name in FIGURES + ("ood_accuracy.png",):
        assert (out / name).stat().st_size > 5000, name


def _sampled(seed, N, accuracy, theory):
    return {"N": N, "T": 0.5, "evaluated_on": "test_cross", "accuracy": accuracy, "theory_accuracy": theory,
            "relative_error_mean": 0.1 * (seed + 1), "monte_carlo_floor": 0.05, "relative_error_U": 0.2,
            "max_rhat": 1.01 + seed / 100, "min_ess": 100.0 - seed, "U": [[1.0, 0.0], [0.0, 1.0]]}


def test_study_summarises_the_samples_and_draws_fig_3c(quick_run, tmp_path):
    """Fig. 3b's black dots over seeds by hand: mean and spread of the sampled accuracy at the smallest width,
    its difference to the theory's; a seed without samples is left out, a seed sampled at a larger width too; the
    figures carry the dots and U of the first seed with an order analysis (Fig. 3c)."""
    results = quick_run[1]
    one = {"claim": results["claim"], "choices": results["choices"], "verdict": results["verdict"]}
    order = dict(results["order_parameters"])
    runs = [SeedRun(0, {}, [one], samples=_sampled(0, 10.0, 0.70, 0.66)),
            SeedRun(1, {}, [one]),
            SeedRun(2, {}, [one], samples=_sampled(2, 10.0, 0.74, 0.72), order_parameters=order),
            SeedRun(3, {}, [one], samples=_sampled(3, 100.0, 0.9, 0.9))]
    s = summarize_samples(runs)
    assert s["N"] == 10.0 and s["n_seeds"] == 2 and s["seeds"] == [0, 2]
    assert s["accuracy"]["mean"] == pytest.approx(0.72)
    assert s["accuracy"]["std_across_seeds"] == pytest.approx(np.std([0.70, 0.74], ddof=1))
    assert s["delta_sampled_minus_theory"]["mean"] == pytest.approx(0.03)
    assert s["relative_error_mean"]["mean"] == pytest.approx(0.2)
    assert s["max_rhat"] == pytest.approx(1.03) and s["min_ess"] == 98.0
    assert summarize_samples([SeedRun(0, {}, [one])]) is None
    study = {"summary": summarize_study(runs), "seeds": [0, 1, 2, 3], "theory_draws": 1, "samples": s,
             "gd_accuracy": {"0": {"test_cross": 0.8, "test_within": 0.7}},
             "order_parameters": dict(order, seed=2)}
    files = study_figures(study, tmp_path)
    assert [f.name for f in files] == ["study_accuracy.png", "study_delta.png", "study_order_parameters.png"]
    (tmp_path / "plain").mkdir()
    without = study_figures(dict(study, samples=None, order_parameters=None), tmp_path / "plain")
    assert [f.name for f in without] == ["study_accuracy.png", "study_delta.png"]
    import matplotlib.image as mpimg  # the dots are the only difference between the two accuracy figures

    assert not np.array_equal(mpimg.imread(tmp_path / "study_accuracy.png"),
                              mpimg.imread(tmp_path / "plain" / "study_accuracy.png"))


def test_seed_run_records_from_before_the_samples_fields_load_with_defaults():
    """A study stage record written before SeedRun had samples / order_parameters loads with None there (so an
    older study resumes); a record lacking a field without a default is refused by name."""
    header = {"seed": 3, "gd_accuracy": {"test_cross": 0.6}, "draws": []}
    run = output_from_record(SeedRun, header, {})
    assert run == SeedRun(3, {"test_cross": 0.6}, [], None, None)
    with pytest.raises(ValueError, match="lacks field 'draws' of SeedRun"):
        output_from_record(SeedRun, {"seed": 3, "gd_accuracy": {}}, {})
