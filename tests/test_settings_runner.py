"""The experiment machinery: registries, typed settings (TOML, --set, presets, validation), the resumable stage
runner and its lock, the command line's options, and the paired statistics of the claims."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from attnpaths._src.registry import Registry
from attnpaths._src.tasks.sources import DATA_SOURCES
from attnpaths.cli import build_parser, main
from attnpaths.experiments import stats
from attnpaths.experiments.base import EXPERIMENTS
from attnpaths.experiments.markov import MarkovSettings
from attnpaths.experiments.oneshot import PRESETS, OneShotSettings
from attnpaths.experiments.runner import LOCK_NAME, OutputInUse, OutputLock, Runner
from attnpaths._src.store import load_record, save_record
from attnpaths.experiments.settings import Settings, at_least, each, positive, register_preset, setting


@dataclass(frozen=True)
class Toy(Settings):
    n: int = setting(3, "a count", check=at_least(1))
    rate: float = setting(0.5, "a rate", check=positive)
    widths: tuple[float, ...] = setting((10.0, 100.0), "widths", check=each(positive))
    name: str = setting("a", "a name", choices=("a", "b"))
    flag: bool = setting(False, "a flag")
    where: str | None = setting(None, "a folder", identity=False)


# ----------------------------------------------------------------------------------------------------------------
# settings
# ----------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, field, want", [
    ("n=7", "n", 7), ("n=1e3", "n", 1000), ("rate=2", "rate", 2.0), ("widths=10,30,100", "widths", (10., 30., 100.)),
    ("widths=[1, 2]", "widths", (1.0, 2.0)), ("widths=5", "widths", (5.0,)), ("name=b", "name", "b"),
    ("flag=true", "flag", True), ("flag=0", "flag", False), ("where=/tmp/x", "where", "/tmp/x"),
    ("where=none", "where", None), ("n = 4", "n", 4),
])
def test_set_parses_by_the_field_type(text, field, want):
    s = Toy.resolve(overrides=[text])
    assert getattr(s, field) == want and type(getattr(s, field)) is type(want)


@pytest.mark.parametrize("text, match", [
    ("n=0", r"setting 'n' must be a number >= 1; got '0' \[n: a count\]"),
    ("n=2.5", "setting 'n' must be an int"),
    ("rate=-1", "setting 'rate' must be a number > 0"),
    ("rate=nan", "setting 'rate' must be a number"),
    ("widths=10,-1", r"every entry a number > 0 \(-1.0 is not\)"),
    ("widths=", "setting 'widths' must be a non-empty list"),
    ("name=c", "setting 'name' must be one of a, b"),
    ("flag=maybe", "setting 'flag' must be true or false"),
    ("rat=1", r"unknown setting 'rat' for Toy \(did you mean 'rate'\?\); known settings: n, rate"),
    ("nothing", "--set expects key=value; got 'nothing'"),
])
def test_bad_values_name_the_field(text, match):
    with pytest.raises(ValueError, match=match):
        Toy.resolve(overrides=[text])


def test_layers_override_in_order_and_name_their_source(tmp_path):
    presets = Registry("toy preset")
    register_preset(presets, "big", {"n": 10, "widths": [1, 2, 3], "description": "a big one"})
    config = tmp_path / "run.toml"
    config.write_text('rate = 0.25\nn = 20\nwidths = [7]\n')
    s = Toy.resolve(presets, "big", config, ["n=30"], {"rate": "0.125"})
    assert (s.n, s.rate, s.widths) == (30, 0.125, (7.0,))
    assert presets["big"].description == "a big one"
    assert Toy.resolve(presets, "big").widths == (1.0, 2.0, 3.0)
    config.write_text("nn = 3\n")
    with pytest.raises(ValueError, match=r"run.toml: unknown setting 'nn' .*did you mean 'n'"):
        Toy.resolve(config=config)
    config.write_text("n = [1\n")
    with pytest.raises(ValueError, match="run.toml is not valid TOML"):
        Toy.resolve(config=config)
    register_preset(presets, "broken", {"n": -1})
    with pytest.raises(ValueError, match="preset 'broken': setting 'n' must be a number >= 1"):
        Toy.resolve(presets, "broken")
    with pytest.raises(ValueError, match="unknown toy preset 'bog' .*did you mean 'big'"):
        Toy.resolve(presets, "bog")


def test_settings_round_trip_through_toml(tmp_path):
    s = Toy(n=5, widths=(1.0, 2.5), flag=True, where="/data")
    (tmp_path / "s.toml").write_text(s.to_toml())
    assert Toy.resolve(config=tmp_path / "s.toml") == s
    assert s.identity() == {k: v for k, v in s.to_dict().items() if k != "where"}
    q = OneShotSettings().updated(PRESETS["cpu"].values)
    (tmp_path / "q.toml").write_text(q.to_toml())
    assert OneShotSettings.resolve(config=tmp_path / "q.toml") == q


def test_every_packaged_preset_is_valid_and_paper_is_spec_e():
    for e in EXPERIMENTS.names():
        for name in EXPERIMENTS[e].presets.names():
            EXPERIMENTS[e].resolve(preset=name)
    p = OneShotSettings.resolve(PRESETS, "paper")
    assert (p.image_size, p.patch_size, p.channels, p.token_dim) == (32, 8, 3, 192)
    assert (p.gd_width, p.qk_dim, p.heads, p.batch_size) == (512, 128, (4, 4), 128)
    assert (p.learning_rate, p.weight_decay, p.n_theory_train) == (3e-4, 5e-5, 600)
    assert p.widths == (10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0)
    assert {2.0, 3.0, 5.0} <= set(p.temperatures) and (p.pixel_mean, p.pixel_std) == (0.922, 0.084)
    c = OneShotSettings.resolve(PRESETS, "cpu")
    assert (c.image_size, c.patch_size, c.channels, c.n_theory_train) == (32, 8, 3, 600) and c.gd_width < 512


def test_choices_come_from_registries_and_accept_user_entries():
    with pytest.raises(ValueError, match="setting 'data' must be one of digits, omniglot"):
        OneShotSettings(data="mine")
    DATA_SOURCES.register("mine", lambda data_dir, image_size: None)
    try:
        assert OneShotSettings(data="mine").data == "mine"
        sub = build_parser()._subparsers._group_actions[0].choices["oneshot"]
        assert "{digits,omniglot,mine}" in sub.format_help()
    finally:
        DATA_SOURCES.unregister("mine")
    with pytest.raises(ValueError, match="already registered"):
        DATA_SOURCES.register("digits", lambda d, s: None)


# ----------------------------------------------------------------------------------------------------------------
# the command line
# ----------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", sorted(EXPERIMENTS.names()) + ["sample"])
def test_help_shows_every_field_with_help_and_default(command):
    sub = build_parser()._subparsers._group_actions[0].choices[command]
    text = " ".join(sub.format_help().split())
    settings = EXPERIMENTS[command].settings if command != "sample" else __import__(
        "attnpaths.experiments.sampling", fromlist=["SampleSettings"]).SampleSettings
    for f in settings.fields():
        flag = "--" + f.name.replace("_", "-")
        assert flag in text, flag
        assert " ".join(f.help.split()) in text, f.name
    for action in sub._actions:
        if action.option_strings and action.dest != "help":
            assert action.help and "(default:" in action.help, action.option_strings


def test_help_texts_may_contain_percent_signs(registries_restored):
    """argparse formats help strings with %: a setting's or an experiment's own % is shown as it is, not a
    traceback (a user's experiment is registered the same way)."""
    @dataclass(frozen=True)
    class Pct(Settings):
        share: float = setting(0.5, "share of the data (50% by default)", check=positive)

    EXPERIMENTS.register("pct", dataclasses.replace(EXPERIMENTS["markov"], name="pct", settings=Pct,
                                                    help="a 100% made-up experiment"))
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices["pct"]
    assert "share of the data (50% by default)" in " ".join(sub.format_help().split())
    assert "a 100% made-up experiment" in parser.format_help()


def test_cli_set_config_and_print_settings(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text("n_test = 300\nwidths = [10, 30]\n")
    assert main(["markov", "--config", str(config), "--set", "temperature=0.02", "--n-train", "50",
                 "--print-settings"]) == 0
    out = capsys.readouterr().out
    s = MarkovSettings.resolve(config=None, overrides=[])
    assert "n_test = 300" in out and "widths = [10.0, 30.0]" in out and "temperature = 0.02" in out
    assert "n_train = 50" in out and s.n_test == 1000
    assert main(["markov", "--set", "n_tset=3", "--print-settings"]) == 2
    assert "unknown setting 'n_tset' for MarkovSettings (did you mean 'n_test'?)" in capsys.readouterr().err
    assert main(["oneshot", "--preset", "quick", "--set", "analyses=heads,ood", "--print-settings"]) == 0
    assert 'analyses = ["heads", "ood"]' in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------------------------
# the runner
# ----------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Out:
    value: float
    table: np.ndarray
    parts: tuple[np.ndarray, ...]
    maybe: np.ndarray | None = None


calls = []


def make(x: float) -> Out:
    calls.append(x)
    return Out(x, np.arange(3.0) * x, (np.ones(2), np.zeros((2, 2))), None if x > 3 else np.eye(2))


def test_runner_saves_skips_and_refuses_other_settings(tmp_path):
    calls.clear()
    with Runner(tmp_path, "toy", Toy()) as run:
        a = run.stage("a", make, 2.0)
    assert calls == [2.0] and (tmp_path / "stages" / "a.npz").is_file() and (tmp_path / "settings.toml").is_file()
    with Runner(tmp_path, "toy", Toy(where="/elsewhere"), resume=True, log=lambda s: None) as run:
        b = run.stage("a", make, 2.0)
    assert calls == [2.0] and b.value == a.value and run.skipped == ["a"]
    np.testing.assert_array_equal(b.table, a.table)
    np.testing.assert_array_equal(b.maybe, np.eye(2))
    assert [p.shape for p in b.parts] == [(2,), (2, 2)]
    with pytest.raises(ValueError, match=r"other settings \(n: stored 3, now 4; rate: stored 0.5, now 0.25\)"):
        Runner(tmp_path, "toy", Toy(n=4, rate=0.25), resume=True).__enter__()
    assert not (tmp_path / LOCK_NAME).exists()  # a refused run releases the lock
    with pytest.raises(ValueError, match="holds a 'toy' run, not 'other'"):
        Runner(tmp_path, "other", Toy(), resume=True).__enter__()
    with Runner(tmp_path, "toy", Toy(n=4)) as run:  # a new run starts over
        assert not run.done("a")
        run.stage("a", make, 5.0)
    assert calls == [2.0, 5.0]
    with Runner(tmp_path, "toy", Toy(n=4), resume=True) as run:
        assert run.stage("a", make, 5.0).maybe is None and calls == [2.0, 5.0]


def _leave_partial(stages: Path, name: str) -> list[Path]:
    """A stage's progress as a killed training leaves it: its partial record and a folder of kept snapshots."""
    stages.mkdir(parents=True, exist_ok=True)
    save_record(stages / f"{name}.partial.npz", "training-checkpoint", {}, {})
    (stages / f"{name}.partial.snapshots").mkdir()
    save_record(stages / f"{name}.partial.snapshots" / "step2.npz", "training-snapshot", {}, {})
    return [stages / f"{name}.partial.npz", stages / f"{name}.partial.snapshots"]


def test_a_stage_s_partial_progress_goes_when_it_is_done_or_the_run_starts_over(tmp_path):
    """<name>.partial.npz and whatever the stage keeps beside it as <name>.partial.* (a folder of snapshots) stay
    while the stage is unfinished and a run resumes, go when the stage is done, and go when a run starts over;
    another stage's progress stays until then."""
    stages = tmp_path / "stages"
    with Runner(tmp_path, "toy", Toy()) as run:
        kept = _leave_partial(stages, "a") + _leave_partial(stages, "b")
    with Runner(tmp_path, "toy", Toy(), resume=True, log=lambda s: None) as run:
        assert all(p.exists() for p in kept)
        run.stage("a", make, 1.0)
    assert [p.exists() for p in kept] == [False, False, True, True]
    with Runner(tmp_path, "toy", Toy()) as run:
        assert not any(p.exists() for p in kept)


def test_a_run_from_before_a_setting_was_added_resumes_at_its_default(tmp_path):
    """A field added to the settings after a run was made counts as its default: the run resumes with the default,
    and is refused, naming the field, with another value."""
    with Runner(tmp_path, "toy", Toy()) as run:
        run.stage("a", make, 1.0)
    rec = load_record(tmp_path / "run.npz", kind="run")
    old = {k: v for k, v in rec.header["settings"].items() if k != "flag"}  # as an earlier version stored it
    save_record(tmp_path / "run.npz", "run", dict(rec.header, settings=old), {})
    with Runner(tmp_path, "toy", Toy(), resume=True, log=lambda s: None) as run:
        assert run.done("a")
    save_record(tmp_path / "run.npz", "run", dict(rec.header, settings=old), {})
    with pytest.raises(ValueError, match=r"other settings \(flag: stored False, now True\)"):
        Runner(tmp_path, "toy", Toy(flag=True), resume=True).__enter__()


def test_runner_damaged_record_is_a_one_line_error(tmp_path):
    with Runner(tmp_path, "toy", Toy()) as run:
        run.stage("a", make, 1.0)
    path = tmp_path / "stages" / "a.npz"
    path.write_bytes(path.read_bytes()[:200])
    with Runner(tmp_path, "toy", Toy(), resume=True) as run:
        with pytest.raises(ValueError, match="a.npz is corrupt or truncated") as info:
            run.stage("a", make, 1.0)
    assert "\n" not in str(info.value)


def test_lock_refuses_a_second_run_and_takes_over_a_dead_ones(tmp_path):
    with OutputLock(tmp_path):
        with pytest.raises(OutputInUse, match=f"in use by another attnpaths run \\(pid {os.getpid()}"):
            OutputLock(tmp_path).acquire()
    assert not (tmp_path / LOCK_NAME).exists()
    # a process that holds the lock and is killed leaves it behind; the next run takes it over
    code = ("import sys, time; from attnpaths.experiments.runner import OutputLock; "
            f"OutputLock({str(tmp_path)!r}).acquire(); print('locked', flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(OutputInUse, match=f"pid {child.pid}"):
            OutputLock(tmp_path).acquire()
    finally:
        child.kill()
        child.wait()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == child.pid
    with OutputLock(tmp_path) as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    # a lock whose pid runs but was started at another time (the pid was reused) is stale too
    me = json.loads(OutputLock(tmp_path).acquire().path.read_text())
    (tmp_path / LOCK_NAME).write_text(json.dumps(dict(me, start="1")))
    with OutputLock(tmp_path) as lock:
        assert json.loads(lock.path.read_text())["start"] == me["start"]


def test_cli_refuses_a_folder_in_use(tmp_path, capsys):
    with OutputLock(tmp_path):
        assert main(["markov", "--widths", "10", "--n-test", "10", "--out", str(tmp_path)]) == 2
    assert "in use by another attnpaths run" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------------------
# paired statistics
# ----------------------------------------------------------------------------------------------------------------

def test_character_bootstrap_weights_equal_a_loop():
    """Episode weight = product of the multiplicities of its two characters in the resample (brute force)."""
    classes = np.array([["a", "b"], ["b", "c"], ["a", "c"], ["c", "d"]])
    w = stats.bootstrap_weights(classes, 50, seed=3)
    rng = np.random.default_rng(3)
    keys = ["a", "b", "c", "d"]
    counts = rng.multinomial(4, [0.25] * 4, size=50)
    for r in range(50):
        m = dict(zip(keys, counts[r]))
        np.testing.assert_array_equal(w[r], [m[x] * m[y] for x, y in classes])


def test_bootstrap_interval_covers_and_shrinks():
    rng = np.random.default_rng(0)
    n_chars = 200
    classes = np.array([[f"c{i}", f"c{j}"] for i, j in rng.integers(n_chars, size=(2000, 2)) if i != j])
    values = rng.random(len(classes)) < 0.7
    w = stats.bootstrap_weights(classes, 2000, seed=1)
    r = stats.mean_with_interval(values, w, 0.95)
    lo, hi = r["ci"]
    assert lo < r["mean"] < hi and 0.01 < hi - lo < 0.1
    narrow = stats.mean_with_interval(values, w, 0.5)["ci"]
    assert lo < narrow[0] < narrow[1] < hi


def test_mcnemar_matches_the_binomial_sum():
    from math import comb

    a = np.array([1, 1, 1, 1, 1, 0, 0, 1, 0, 1], bool)
    b = np.array([0, 0, 0, 1, 0, 1, 0, 1, 0, 0], bool)
    r = stats.mcnemar_exact(a, b)
    assert (r["a_right_b_wrong"], r["a_wrong_b_right"]) == (5, 1)
    assert r["p_value"] == pytest.approx(2 * sum(comb(6, k) for k in range(2)) / 2 ** 6, rel=1e-12)
    assert stats.mcnemar_exact(a, a)["p_value"] == 1.0


def test_every_settings_field_is_reachable_from_the_command_line():
    """A value set through each field's own option arrives in the resolved settings."""
    for name in EXPERIMENTS.names():
        e = EXPERIMENTS[name]
        sub = build_parser()._subparsers._group_actions[0].choices[name]
        base = e.settings()
        for f in e.settings.fields():
            value = getattr(base, f.name)
            if isinstance(value, bool) or value is None:
                continue
            args = sub.parse_args(["--" + f.name.replace("_", "-")] + (
                [str(v) for v in value] if isinstance(value, tuple) else [str(value)]))
            flags = {k.split(":", 1)[1]: (",".join(v) if isinstance(v, list) else v)
                     for k, v in vars(args).items() if k.startswith("setting:")}
            assert e.resolve(flags=flags) == base, f.name


def test_settings_reject_types_in_constructors():
    assert dataclasses.replace(Toy(), n=4).n == 4
    with pytest.raises(ValueError, match="setting 'widths' must be a list of numbers; got 'abc'"):
        Toy(widths="abc")
    with pytest.raises(ValueError, match="setting 'where' must be a string or none; got 3"):
        Toy(where=3)
