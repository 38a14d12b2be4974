"""Fault injection: a sampling job SIGKILLed at random points (mid-write included) resumes bit for bit.

After every kill: the results file holds at least every draw the job had reported saved, and those draws are
a prefix of the uninterrupted run's (nothing lost, nothing duplicated, nothing changed). After the last resume
the draws equal the uninterrupted run's bit for bit and no temporary file is left.
"""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import attnpaths  # noqa: F401  (float64)
from attnpaths._src.sampling import load_draws
from attnpaths._src.sampling.store import parts_folder

sys.path.insert(0, str(Path(__file__).parent))
import sampling_job  # noqa: E402

JOB = str(Path(__file__).with_name("sampling_job.py"))


def _temporaries(*folders):
    return [f for d in folders if d.is_dir() for f in os.listdir(d) if f.startswith(".") and f.endswith(".tmp")]


def _start(out, n_draws, kill_at, cache):
    return subprocess.Popen([sys.executable, JOB, str(out), str(n_draws), str(kill_at), str(cache)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _saved(lines) -> int:
    return max([int(l.split()[1]) for l in lines if l.startswith("saved")], default=0)


def _kill_once(out, n_draws, cache, rng: random.Random, kind: str) -> tuple[int, int, str]:
    """Start the job, kill it (at a random rename, or at a random time after its first save); return
    (draws it reported saved, its return code, its stderr)."""
    if kind == "write":
        proc = _start(out, n_draws, rng.randint(1, 2 * n_draws // 3), cache)
        stdout, stderr = proc.communicate(timeout=300)
        return _saved(stdout.splitlines()), proc.returncode, stderr
    proc = _start(out, n_draws, 0, cache)
    lines = [proc.stdout.readline()]  # the first save: sampling has started
    time.sleep(rng.uniform(0.0, 0.05))
    proc.send_signal(signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=300)
    return _saved(lines + stdout.splitlines()), proc.returncode, stderr


def _kill_and_resume(tmp_path, n_draws, kinds, seed):
    reference = sampling_job.run(None, n_draws)
    out, cache = tmp_path / "run.npz", tmp_path / "jax-cache"
    rng = random.Random(seed)
    stored = 0
    for i, kind in enumerate(kinds):
        reported, code, stderr = _kill_once(out, n_draws, cache, rng, kind)
        assert code in (-signal.SIGKILL, 0), stderr  # 0: the job finished before the kill
        if not out.exists():
            assert reported == 0
            continue
        draws = load_draws(out)
        assert draws.n_draws >= max(reported, stored), (i, kind, reported, stored)  # nothing saved is lost
        np.testing.assert_array_equal(draws.f_test, reference.f_test[:, :draws.n_draws])  # a prefix: no dup.
        np.testing.assert_array_equal(draws.U, reference.U[:, :draws.n_draws])
        stored = draws.n_draws
    proc = _start(out, n_draws, 0, cache)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0 and stdout.endswith("done\n"), stderr
    final = load_draws(out)
    assert final.complete
    np.testing.assert_array_equal(final.f_test, reference.f_test)
    np.testing.assert_array_equal(final.U, reference.U)
    assert not _temporaries(out.parent, parts_folder(out))


def test_killed_job_resumes_bit_for_bit(tmp_path):
    """Two kills: one inside the atomic writer (between write and rename), one at a random time."""
    _kill_and_resume(tmp_path, 30, ["write", "time"], seed=0)


@pytest.mark.slow
def test_killed_job_resumes_bit_for_bit_many_times(tmp_path):
    """24 kills at random points (12 inside the writer, 12 at random times) of a longer run."""
    kinds = ["write", "time"] * 12
    random.Random(1).shuffle(kinds)
    _kill_and_resume(tmp_path, 300, kinds, seed=1)
