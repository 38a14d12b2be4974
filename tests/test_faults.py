"""The fault table of the commands: a used output folder, Ctrl-C, SIGTERM, file modes, timing.

For every long command (markov with samples, oneshot, oneshot-study, phase-map, finite-size, sweep, sample):
* a rerun into a folder that holds a run, without --resume, is refused (exit status 2, the folder and both ways
  on named) and nothing on disk changes (names, sizes, mtimes); --overwrite moves the old run aside;
* (slow) SIGINT to the process group (a terminal's Ctrl-C) and SIGTERM to the driver (`kill PID`) at seeded
  random points each end with one line (what is stored, the command that continues) and exit status 130 / 143,
  no traceback; the printed command then finishes with the numbers of an uninterrupted run.
Run the slow part with `nice pytest -m slow tests/test_faults.py`.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import attnpaths
from attnpaths._src.atomic import write_atomic
from attnpaths._src.store import save_record
from attnpaths.cli import main
from attnpaths.experiments.outputs import claim_output
from attnpaths.experiments.runner import OutputInUse
from attnpaths.experiments.timing import Timeline, timing_parts
from test_experiment_oneshot import _strip  # results without wall-clock fields

MARKOV = ["markov", "--widths", "10", "100", "--n-test", "60", "--samples", "--sample-widths", "10",
          "--n-samples", "8", "--n-chains", "2", "--n-warmup", "2"]
ONESHOT = ["oneshot", "--preset", "quick", "--set", "analyses=", "--set", "widths=10,1000", "--set",
           "temperatures=0.5,1", "--set", "extra_temperatures="]
STUDY = ["oneshot-study", "--preset", "quick", "--set", "analyses=", "--set", "widths=10,1000", "--set",
         "temperatures=0.5,1", "--set", "extra_temperatures=", "--set", "seeds=0,1", "--set", "theory_draws=1"]
STRENGTH = ["oneshot-strength", "--preset", "quick", "--set", "widths=10", "--set", "temperatures=0.5,1", "--set",
            "extra_temperatures=", "--set", "seeds=0", "--set", "checkpoints=2"]
PHASE_MAP = ["phase-map", "--networks", "2paths", "--widths", "10", "--alphas", "0.5", "1", "--temperatures",
             "0.01", "0.1", "--draws", "2", "--n-test", "50", "--workers", "2"]
FINITE_SIZE = ["finite-size", "--alphas", "0.5", "--widths", "10", "30", "--draws", "2", "--n-test", "50",
               "--n-samples", "20", "--n-bootstrap", "100", "--workers", "2"]
GRID = """task = "markov"
[settings]
n_train = 20
n_test = 40
[axes]
N = [10, 30, 100]
temperature = [0.01, 0.1, 1.0]
train_seed = [1, 2]
"""


def snapshot(folder: Path) -> dict:
    """Every file under `folder`: relative name -> (size, mtime in ns)."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def used_folder(path: Path, sweep: bool = False) -> Path:
    """A folder as a killed run leaves it: its run record and one finished stage (or a sweep store's root)."""
    path.mkdir(parents=True)
    if sweep:
        (path / "sweep.zarr").mkdir()
        (path / "sweep.zarr" / "zarr.json").write_text("{}")
        (path / "grid.toml").write_text('task = "markov"\n')
    else:
        save_record(path / "run.npz", "run", {"experiment": "x", "settings": {}, "all_settings": {}}, {})
        save_record(path / "stages" / "gp.npz", "stage:gp", {"output": {}}, {"a": np.arange(3.0)})
        (path / "settings.toml").write_text("n = 1\n")
    return path


# ---- refused without --resume, nothing changed ----------------------------------------------------------------
@pytest.mark.parametrize("args,sweep", [(MARKOV, False), (ONESHOT, False), (STUDY, False), (STRENGTH, False),
                                        (PHASE_MAP, True), (FINITE_SIZE, True), (["sweep", "GRID"], True)],
                         ids=["markov", "oneshot", "oneshot-study", "oneshot-strength", "phase-map", "finite-size",
                              "sweep"])
def test_a_used_folder_is_refused_and_left_as_it_was(args, sweep, tmp_path, capsys):
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    out = used_folder(tmp_path / "out", sweep)
    before = snapshot(out)
    time.sleep(0.01)  # a rewrite would show in the mtimes
    assert main([str(grid) if a == "GRID" else a for a in args] + ["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out} already holds a" in err and "--resume" in err and "--overwrite" in err
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.toml", "out"]


def test_overwrite_moves_the_old_run_aside_and_deletes_nothing(tmp_path):
    out = used_folder(tmp_path / "out")
    before, lines = snapshot(out), []
    with pytest.raises(OutputInUse, match="already holds a run; continue it with --resume, or start over with "
                                          "--overwrite"):
        claim_output(out, resume=False, overwrite=False)
    claim_output(out, resume=True, overwrite=False)  # continuing changes nothing either
    assert snapshot(out) == before
    claim_output(out, resume=False, overwrite=True, log=lines.append)
    assert not out.exists()
    (aside,) = [p for p in tmp_path.iterdir() if p.name.startswith("out.old-")]
    assert snapshot(aside) == before and str(aside) in lines[0]
    out.mkdir()
    (out / "notes.txt").write_text("not a run")
    claim_output(out, resume=False, overwrite=False)  # a folder without a run's files is no run: used as it is
    assert (out / "notes.txt").exists()


def test_a_run_that_starts_while_overwrite_moves_the_old_one_is_refused_not_moved(tmp_path, monkeypatch):
    """--overwrite moves the old run under the folder's lock: another run (or --overwrite) that starts in the
    same folder at that moment is refused by the lock, and its files are never moved aside with the old run."""
    from attnpaths.experiments.runner import OutputLock

    out = used_folder(tmp_path / "out")
    before, other, rename = snapshot(out), {}, os.rename

    def rename_while_another_run_starts(src, dst):
        try:  # the other run's Runner takes the lock as its first step
            other["lock"] = OutputLock(out).acquire()
        except OutputInUse as err:
            other["refused"] = str(err)
        rename(src, dst)

    monkeypatch.setattr(os, "rename", rename_while_another_run_starts)
    claim_output(out, resume=False, overwrite=True, log=lambda line: None)
    monkeypatch.undo()
    if "lock" in other:
        other["lock"].release()
    (aside,) = [p for p in tmp_path.iterdir() if p.name.startswith("out.old-")]
    assert "in use by another attnpaths run" in other.get("refused", ""), "the other run was let in"
    assert snapshot(aside) == before  # no lock file of either run left in the moved folder


# ---- sample: the run's own settings, continued, other settings refused -------------------------------------
@pytest.fixture(scope="module")
def markov_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("faults") / "markov"
    assert main(MARKOV + ["--out", str(out)]) == 0
    return out


def test_sample_defaults_to_the_runs_settings_continues_and_refuses_other_settings(markov_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(markov_run, run)
    capsys.readouterr()
    assert main(["sample", str(run)]) == 0  # its own chains, warm-up, seed, widths: the stored draws suffice
    assert json.loads((run / "results.json").read_text())["samples"][0]["n_draws"] == 8
    assert main(["sample", str(run), "--n-samples", "12"]) == 0
    assert main(["sample", str(run), "--n-samples", "12"]) == 0  # twice: continued, not refused
    assert json.loads((run / "results.json").read_text())["samples"][0]["n_draws"] == 12
    before = snapshot(run)
    capsys.readouterr()
    assert main(["sample", str(run), "--seed", "5"]) == 2  # other chains than the stored ones
    assert "gibbs_N10.npz" in capsys.readouterr().err
    assert snapshot(run) == before
    assert "resume=True" not in (Path(__file__).parents[1] / "src/attnpaths/experiments/sampling.py").read_text()


# ---- file modes and the timing line ---------------------------------------------------------------------------
def _netcdf(path):
    import xarray as xr

    from attnpaths.experiments.io import to_netcdf

    to_netcdf(xr.Dataset({"a": ("x", [1.0, 2.0])}), path)


WRITERS = {"write_atomic": lambda path: write_atomic(path, lambda f: f.write(b"{}")), "to_netcdf": _netcdf}


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_written_files_get_the_users_umask(tmp_path, umask, writer):
    old = os.umask(umask)
    try:
        WRITERS[writer](tmp_path / "f")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o666 & ~umask


def test_every_file_of_a_run_has_the_umask_mode(markov_run):
    modes = {str(p.relative_to(markov_run)): stat.S_IMODE(p.stat().st_mode)
             for p in markov_run.rglob("*") if p.is_file()}
    mask = os.umask(0)
    os.umask(mask)
    assert {"results.json", "run.npz", "settings.toml", "stages/theory.npz", "accuracy_vs_width.png"} <= set(modes)
    assert {k for k, m in modes.items() if m != 0o666 & ~mask} == set()


def test_timing_parts_add_up_and_count_overlapping_compiles_once():
    t = Timeline()
    t._mark = 0.0
    t._stack, t.segments = [], [("train", 1.0, 4.0), ("theory.d0", 4.0, 6.0), ("theory.d1", 6.0, 7.0)]
    # nested and parallel compile events: [1, 3] and [2, 2.5] inside it, [2.5, 5] on another thread
    parts = timing_parts(0.0, 10.0, [(1.0, 3.0), (2.0, 2.5), (2.5, 5.0)], t)
    assert parts == pytest.approx({"JAX compilation": 4.0, "train": 0.0, "theory": 2.0, "other": 4.0})
    assert sum(parts.values()) == pytest.approx(10.0)


# ---- signals ------------------------------------------------------------------------------------------------
def _start(args, logs: Path) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("attnpaths")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "attnpaths.cli"]
    src = str(Path(attnpaths.__file__).parents[1])  # this checkout's sources, as the suite imports them
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen(cmd + list(args), stdout=open(logs / "stdout", "w"),
                            stderr=open(logs / "stderr", "w"), start_new_session=True, cwd=logs, env=env)


def _interrupt(args, out: Path, sig: int, delay: float, logs: Path) -> tuple[int, str]:
    return _interrupt_args(list(args) + ["--out", str(out)], sig, delay, logs)


def _interrupt_args(args, sig: int, delay: float, logs: Path) -> tuple[int, str]:
    """Start the command, send `sig` `delay` s after its first output line (SIGINT to its process group as a
    terminal does, SIGTERM to the driver as `kill` does); returns (exit status, stderr)."""
    logs.mkdir(parents=True, exist_ok=True)
    p = _start(args, logs)
    t0 = time.time()
    while not (logs / "stdout").read_text().strip():
        assert p.poll() is None, (logs / "stderr").read_text()
        assert time.time() - t0 < 300, "no output"
        time.sleep(0.1)
    try:
        p.wait(timeout=delay)
        raise AssertionError(f"finished before the signal at {delay:.1f} s")
    except subprocess.TimeoutExpired:
        pass
    if sig == signal.SIGINT:
        os.killpg(p.pid, sig)
    else:
        os.kill(p.pid, sig)
    p.wait(timeout=120)
    return p.returncode, (logs / "stderr").read_text()


def _the_one_line(stderr: str, sig: int) -> list[str]:
    """The interrupted line must be the last; returns the command it says continues."""
    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.replace("\r", "\n").splitlines() if ln.strip()]
    name = signal.Signals(sig).name
    assert lines[-1].startswith(f"interrupted ({name}): stored in "), stderr[-2000:]
    assert sum(ln.startswith("interrupted") for ln in lines) == 1
    return shlex.split(lines[-1].split("continue with: ", 1)[1])[1:]


def test_sigint_ends_with_one_line_and_130(tmp_path):
    code, err = _interrupt(["markov", "--widths", "10", "30", "100", "300", "1000", "--n-test", "60"],
                           tmp_path / "out", signal.SIGINT, 0.5, tmp_path / "logs")
    assert code == 130
    again = _the_one_line(err, signal.SIGINT)
    assert again[0] == "markov" and again[-1] == "--resume" and str(tmp_path / "out") in again


# ---- slow: SIGINT and SIGTERM at seeded random points, then the printed command finishes the run ------------
SLOW_MARKOV = ["markov", "--widths", "10", "30", "100", "300", "1000", "--n-test", "100", "--samples",
               "--sample-widths", "10", "--n-samples", "200", "--n-chains", "2", "--n-warmup", "10"]
SAMPLE = ["sample", "RUN", "--n-samples", "300"]
COMMANDS = {"markov": SLOW_MARKOV, "oneshot": ONESHOT, "oneshot-study": STUDY, "phase-map": PHASE_MAP,
            "finite-size": FINITE_SIZE, "sweep": ["sweep", "GRID", "--workers", "2", "--no-progress"],
            "sample": SAMPLE}


def _argv(name: str, out: Path, grid: Path) -> list[str]:
    args = [str(grid) if a == "GRID" else str(out) if a == "RUN" else a for a in COMMANDS[name]]
    return args if name == "sample" else args + ["--out", str(out)]


def _run(args, logs: Path) -> float:
    """Run a command to its end; returns the seconds from its first output line to its end."""
    logs.mkdir(parents=True, exist_ok=True)
    p = _start(args, logs)
    first = None
    while p.poll() is None:
        if first is None and (logs / "stdout").read_text().strip():
            first = time.time()
        time.sleep(0.1)
    assert p.returncode == 0, (logs / "stderr").read_text()[-3000:]
    return time.time() - (first or time.time())


def _numbers(name: str, out: Path):
    if name in ("sweep",):
        from attnpaths.experiments.sweep.store import open_sweep

        ds = open_sweep(out).load()
        return {k: ds[k].values.tolist() for k in sorted(ds.data_vars) if "seconds" not in k}
    return _strip(json.loads((out / "results.json").read_text()))


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """Uninterrupted runs, made when a test first asks: name -> (folder, seconds after the first line)."""
    root, made = tmp_path_factory.mktemp("references"), {}
    grid = root / "grid.toml"
    grid.write_text(GRID)

    def get(name: str):
        if name not in made:
            out = root / name
            if name == "sample":
                shutil.copytree(get("markov")[0], out)
            made[name] = (out, _run(_argv(name, out, grid), root / f"{name}.logs"))
        return made[name]
    get.grid = grid
    return get


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("name", list(COMMANDS))
def test_interrupted_anywhere_ends_with_one_line_and_resumes_to_the_same_numbers(name, sig, references,
                                                                                tmp_path):
    reference, seconds = references(name)
    delay = random.Random(f"{name}-{sig}").uniform(0.05, 0.5) * seconds
    for attempt in range(4):  # a run faster than the reference (a warmer compilation cache) is tried again sooner
        out = tmp_path / f"out{attempt}"
        if name == "sample":
            shutil.copytree(references("markov")[0], out)
        try:
            code, err = _interrupt_args(_argv(name, out, references.grid), sig, delay, tmp_path / f"logs{attempt}")
            break
        except AssertionError as finished:
            if "finished before the signal" not in str(finished):
                raise
            delay *= 0.4
    else:
        raise AssertionError(f"{name} always finished before the signal")
    assert code == 128 + sig, err[-3000:]
    again = _the_one_line(err, sig)
    assert str(out) in " ".join(again)
    _run(again, tmp_path / "logs-again")
    assert _numbers(name, out) == _numbers(name, reference)
    print(f"{name}: {signal.Signals(sig).name} at {delay:.1f} s of {seconds:.1f} s; {err.splitlines()[-1]}")


def test_a_signal_whose_exception_python_dropped_still_ends_as_interrupted(monkeypatch, capsys):
    """Python drops an exception raised inside a garbage-collection or finaliser callback; a Ctrl-C that lands
    there must still end the command as interrupted, not with status 0."""
    import argparse

    from attnpaths import cli

    def swallowing_run(args):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1.0)  # the handler runs here
        except KeyboardInterrupt:
            pass  # as Python does with an exception raised in a callback it cannot propagate
        return 0

    parser = argparse.ArgumentParser()
    parser.set_defaults(func=swallowing_run, compile_cache=None, command="toy")
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    assert cli.main([]) == 130
    assert capsys.readouterr().err.strip() == "interrupted (SIGINT)"


# ---- an interrupt that lands in a finaliser ---------------------------------------------------------------------
class _SignalsWhileCollected:
    """Sends SIGINT to this process from its finaliser: the handler's KeyboardInterrupt is raised inside __del__,
    where Python cannot propagate it (it calls sys.unraisablehook instead), as when Ctrl-C lands in one of JAX's
    garbage-collection callbacks."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # bytecodes for the pending handler to run in, still inside __del__
            pass


def test_an_interrupt_dropped_by_a_finaliser_ends_with_the_one_line_and_no_traceback(tmp_path, capsys,
                                                                                     monkeypatch):
    from dataclasses import dataclass

    from attnpaths._src.registry import Registry
    from attnpaths.experiments.base import EXPERIMENTS, Experiment
    from attnpaths.experiments.settings import Settings, setting

    @dataclass(frozen=True)
    class Toy(Settings):
        x: int = setting(1, "a number")

    def run(s, out, resume, log):
        _SignalsWhileCollected()  # collected at once: the interrupt is dropped, and the run goes on to its end
        return {"x": s.x}

    EXPERIMENTS.register("toy-dropped", Experiment(name="toy-dropped", help="a toy", settings=Toy,
                                                   presets=Registry("preset of toy-dropped"), run=run,
                                                   report=lambda results, seconds: []))
    printed = []  # what Python's default hook would print ("Exception ignored in ... Traceback"); pytest has its own
    monkeypatch.setattr(sys, "unraisablehook", printed.append)
    try:
        code = main(["toy-dropped", "--out", str(tmp_path / "out")])
    finally:
        EXPERIMENTS.unregister("toy-dropped")
    err = capsys.readouterr().err
    assert code == 130 and printed == []
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert err.strip().splitlines()[-1].startswith("interrupted (SIGINT)")
