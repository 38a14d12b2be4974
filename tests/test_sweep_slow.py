"""Slow checks of `attnpaths sweep` with real processes (run with `pytest -m slow tests/test_sweep_slow.py`):

* the 3 x 4 x 3 grid of test_sweep.py on a separately started `dask scheduler` with two `dask worker` processes
  gives the same numbers as on the default LocalCluster;
* a sweep killed with SIGKILL at random points several times, then resumed, stores the same numbers as an
  uninterrupted sweep, and every cell exactly once.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dask.distributed")

from attnpaths.experiments.sweep import THREAD_ENV  # noqa: E402
from attnpaths.experiments.sweep.store import open_sweep  # noqa: E402

pytestmark = pytest.mark.slow

GRID = """task = "markov"
[settings]
n_train = 20
n_test = 40
[axes]
N = [10, 30, 100]
temperature = [0.01, 0.1, 1.0, 10.0]
train_seed = [1, 2, 3]
"""
TIMING = {"seconds", "theory_seconds", "sample_seconds"}
BIN = Path(sys.executable).parent
ENV = dict(os.environ, **THREAD_ENV)


def sweep(grid: Path, out: Path, *options: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "attnpaths"), "sweep", str(grid), "--out", str(out), "--no-progress",
                             *options], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, **kwargs)


def finish(process: subprocess.Popen, timeout: float = 900) -> str:
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, out
    return out


def assert_same_store(a: Path, b: Path) -> int:
    """Every variable but the timings equal, bit for bit; returns the number of cells compared."""
    x, y = open_sweep(a).load(), open_sweep(b).load()
    assert set(x.data_vars) == set(y.data_vars)
    for name in x.data_vars:
        if name not in TIMING:
            np.testing.assert_array_equal(x[name].values, y[name].values, err_msg=name)
    assert bool(x.done.all()) and not (x.error != "").any()
    return int(x.done.sum())


@pytest.fixture
def grid_file(tmp_path) -> Path:
    path = tmp_path / "grid.toml"
    path.write_text(GRID)
    return path


def test_an_existing_scheduler_with_two_worker_processes_gives_the_same_numbers(tmp_path, grid_file):
    reference = sweep(grid_file, tmp_path / "local", "--workers", "2")
    finish(reference)
    info = tmp_path / "scheduler.json"
    started = []
    try:
        started.append(subprocess.Popen([str(BIN / "dask"), "scheduler", "--scheduler-file", str(info), "--port",
                                         "0", "--dashboard-address", ":0"], env=ENV, start_new_session=True,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.time() + 60
        while not info.exists() and time.time() < deadline:
            time.sleep(0.5)
        address = json.loads(info.read_text())["address"]
        for _ in range(2):
            started.append(subprocess.Popen([str(BIN / "dask"), "worker", address, "--nworkers", "1", "--nthreads",
                                             "1", "--no-dashboard"], env=ENV, start_new_session=True,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from dask.distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
            workers = client.scheduler_info()["workers"]
            assert len(workers) == 2 and all(w["nthreads"] == 1 for w in workers.values())
        log = finish(sweep(grid_file, tmp_path / "cluster", "--scheduler", address))
        print(log)
        assert "36 cells computed" in log
        assert assert_same_store(tmp_path / "local", tmp_path / "cluster") == 36
    finally:
        for p in reversed(started):
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=60)


def test_sigkill_at_random_points_then_resume_equals_an_uninterrupted_sweep(tmp_path, grid_file):
    finish(sweep(grid_file, tmp_path / "reference", "--workers", "2"))
    out, rng, kills = tmp_path / "killed", random.Random(20240517), []
    for _ in range(4):
        p = sweep(grid_file, out, "--workers", "2", "--resume")
        wait = rng.uniform(4.0, 20.0)
        try:
            p.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)  # the driver and its LocalCluster's worker processes
            p.wait()
        stored = int(open_sweep(out).done.sum()) if (out / "sweep.zarr").exists() else 0
        kills.append((round(wait, 1), p.returncode, stored))
    print("kills (seconds after start, return code, cells stored):", kills)
    assert any(code == -signal.SIGKILL for _, code, _ in kills)
    log = finish(sweep(grid_file, out, "--workers", "2", "--resume"))
    print(log)
    assert assert_same_store(tmp_path / "reference", out) == 36
