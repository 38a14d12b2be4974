"""Long jobs killed with SIGKILL resume (`--resume`) to the numbers of an uninterrupted run, bit for bit.

How to trigger it by hand: start the command, kill it (`kill -9 PID`) while it runs, and run the same command
with `--resume` added; the lock of the killed process is taken over, finished stages are loaded, the training
continues from OUT/stages/train.partial.npz, the theory grid from OUT/stages/theory.d0.partial.npz, the Markov
theory from OUT/stages/theory.partial.npz and posterior draws from OUT/samples/*.npz.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from attnpaths import load_draws
from attnpaths._src.store import load_record
from test_experiment_oneshot import _strip  # results without wall-clock fields

ONESHOT = ["oneshot", "--preset", "quick", "--set", "train_steps=600", "--set", "eval_every=50",
           "--set", "analyses=", "--set", "widths=10,1000", "--set", "temperatures=0.5,1", "--set",
           "extra_temperatures="]
MARKOV = ["markov", "--widths", "10", "1000", "--n-test", "200", "--samples", "--sample-widths", "10",
          "--n-samples", "300", "--n-chains", "2", "--n-warmup", "20"]


def _cli(args, out) -> subprocess.Popen:
    code = "import sys; from attnpaths.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, *args, "--out", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _kill_when(proc, ready, timeout=600.0) -> None:
    start = time.time()
    while not ready():
        if proc.poll() is not None:
            raise AssertionError("the run finished before it could be killed")
        if time.time() - start > timeout:
            proc.kill()
            raise AssertionError("the run never reached the kill point")
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _step(path: Path) -> int:
    try:
        return int(load_record(path).header["step"])
    except (FileNotFoundError, ValueError):
        return 0


@pytest.mark.slow
def test_killed_oneshot_training_resumes_bitwise(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert _cli(ONESHOT, whole).wait() == 0
    proc = _cli(ONESHOT, killed)
    _kill_when(proc, lambda: _step(killed / "stages" / "train.partial.npz") >= 200)
    assert (killed / ".attnpaths.lock").exists()  # left behind by the killed process
    assert _cli(ONESHOT + ["--resume"], killed).wait() == 0
    a, b = load_record(whole / "stages" / "train.npz"), load_record(killed / "stages" / "train.npz")
    assert sorted(a.arrays) == sorted(b.arrays)
    for k in a.arrays:
        np.testing.assert_array_equal(a.arrays[k], b.arrays[k])
    assert _strip(json.loads((whole / "results.json").read_text())) == \
        _strip(json.loads((killed / "results.json").read_text()))


@pytest.mark.slow
def test_killed_markov_samples_resume_bitwise(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert _cli(MARKOV, whole).wait() == 0
    draws = killed / "samples" / "gibbs_N10.npz"

    def some_draws():
        try:
            return 0 < load_record(draws).header["draws_done"] < 300
        except (FileNotFoundError, ValueError):
            return False

    proc = _cli(MARKOV, killed)
    _kill_when(proc, some_draws)
    assert _cli(MARKOV + ["--resume"], killed).wait() == 0
    a, b = load_draws(whole / "samples" / "gibbs_N10.npz"), load_draws(draws)  # header + streamed parts
    assert a.f_test.shape[1] == 300 and b.f_test.shape == a.f_test.shape
    np.testing.assert_array_equal(a.f_test, b.f_test)
    np.testing.assert_array_equal(a.U, b.U)
    assert _strip(json.loads((whole / "results.json").read_text())) == \
        _strip(json.loads((killed / "results.json").read_text()))
