"""`attnpaths sample DIR` adds its draws as a stage of the run's `Runner`: results.json is rebuilt from the stage
records by the experiment's own run function and is never read back, so a missing or damaged results.json does
not matter, and the result is the one an uninterrupted run that sampled itself writes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from attnpaths._src.registry import Registry
from attnpaths.cli import main
from attnpaths.experiments.base import EXPERIMENTS, Experiment
from attnpaths.experiments.runner import Runner
from attnpaths.experiments.settings import Settings, setting
from test_experiment_oneshot import _strip  # results without wall-clock fields

THEORY = ["markov", "--widths", "10", "100", "--n-test", "60"]
SAMPLING = ["--sample-widths", "10", "--n-samples", "8", "--n-chains", "2", "--n-warmup", "2"]
SAMPLE = ["--widths", "10", "--n-samples", "8", "--n-chains", "2", "--n-warmup", "2"]


def _read(folder) -> dict:
    results = json.loads((folder / "results.json").read_text())
    results.pop("settings")  # the sampled run says samples = true; the theory run, sampled later, does not
    return _strip(results)


@pytest.fixture(scope="module")
def sampled_in_the_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample_stage") / "uninterrupted"
    assert main(THEORY + ["--samples"] + SAMPLING + ["--out", str(out)]) == 0
    return _read(out)


@pytest.mark.parametrize("damage", ["deleted", "corrupt", "stale"])
def test_sample_rebuilds_results_from_the_stage_records(damage, sampled_in_the_run, tmp_path):
    out = tmp_path / "run"
    assert main(THEORY + ["--out", str(out)]) == 0
    results = out / "results.json"
    if damage == "deleted":
        results.unlink()
    elif damage == "corrupt":
        results.write_text('{"experiment": "markov", "theo')
    else:  # a well-formed file with other numbers: patching it would keep them
        stale = json.loads(results.read_text())
        stale["gp_accuracy"] = {"all paths": -1.0}
        stale["samples"] = [{"N": 100.0, "accuracy": -1.0}]
        results.write_text(json.dumps(stale))
    (out / "markov.csv").unlink()
    (out / "accuracy_vs_width.png").unlink()
    assert main(["sample", str(out)] + SAMPLE) == 0
    assert (out / "stages" / "samples.npz").is_file()
    assert _read(out) == sampled_in_the_run
    assert "sample_accuracy" in (out / "markov.csv").read_text()
    assert (out / "accuracy_vs_width.png").stat().st_size > 5000  # redrawn by the experiment's figures


def test_sample_refuses_an_unfinished_run_and_names_the_command(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(THEORY + ["--out", str(out)]) == 0
    (out / "stages" / "alignment.npz").unlink()  # as if killed before its last stage
    capsys.readouterr()
    assert main(["sample", str(out)] + SAMPLE) == 2
    err = capsys.readouterr().err
    assert "'alignment' is not done" in err and f"attnpaths markov --resume --out {out}" in err
    assert not (out / "stages" / "samples.npz").exists() and not (out / "samples").exists()


@dataclass(frozen=True)
class S(Settings):
    x: int = setting(1, "a number")


@dataclass(frozen=True)
class Out:
    value: int


def make(v: int) -> Out:
    return Out(v)


@pytest.mark.parametrize("only", [("b",), None])
def test_a_runner_with_only_runs_those_stages_and_loads_the_others(only, tmp_path):
    with Runner(tmp_path, "toy", S(), log=lambda line: None) as run:
        run.stage("a", make, 1)
    with Runner(tmp_path, "toy", S(), resume=True, log=lambda line: None, only=only) as run:
        assert run.stage("a", make, 2).value == 1  # done: loaded
        assert run.stage("b", make, 3).value == 3  # in `only` (or no limit): run
        if only is None:
            assert run.stage("c", make, 4).value == 4
        else:
            with pytest.raises(ValueError, match="stage 'c' is not done"):
                run.stage("c", make, 4)
            assert not run.done("c")


def test_a_resumed_run_keeps_the_samples_that_sample_added(tmp_path, monkeypatch):
    from attnpaths.experiments.markov import figures

    drawn, draw = [], figures.markov_figures
    monkeypatch.setattr(figures, "markov_figures", lambda results, out: drawn.append(results) or draw(results, out))
    out = tmp_path / "run"
    assert main(THEORY + ["--out", str(out)]) == 0
    assert len(drawn) == 1 and "samples" not in drawn[0]  # the figures are drawn once, by the command
    assert main(["sample", str(out)] + SAMPLE) == 0
    sampled = _read(out)
    assert [row["N"] for row in sampled["samples"]] == [10.0]
    assert main(THEORY + ["--out", str(out), "--resume"]) == 0  # results.json rebuilt from the stage records
    assert _read(out) == sampled
    assert len(drawn) == 3 and all("samples" in r for r in drawn[1:])  # sample and the resumed run redraw them


def test_a_command_draws_its_experiments_declared_figures_once_from_the_results(tmp_path):
    drawn = []

    def run(s, out, resume, log):
        with Runner(out, "toy-figures", s, resume, log) as runner:
            return {"value": runner.stage("a", make, s.x).value}

    def figures(results, out):
        drawn.append(results)
        (Path(out) / "toy.txt").write_text(str(results["value"]))
        return [Path(out) / "toy.txt"]

    EXPERIMENTS.register("toy-figures", Experiment(name="toy-figures", help="a toy", settings=S,
                                                   presets=Registry("preset of toy-figures"), run=run,
                                                   report=lambda results, seconds: [], figures=figures))
    try:
        assert main(["toy-figures", "--x", "3", "--out", str(tmp_path)]) == 0
        assert main(["toy-figures", "--x", "3", "--out", str(tmp_path), "--resume"]) == 0
    finally:
        EXPERIMENTS.unregister("toy-figures")
    assert drawn == [{"value": 3}, {"value": 3}] and (tmp_path / "toy.txt").read_text() == "3"
