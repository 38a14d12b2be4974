"""The sweep runner: grid files, the labelled store, interruption and resumption, failed cells, the features task.

The runs use an in-process LocalCluster (two single-threaded worker threads) so that the suite stays fast; the
same grid on separately started `dask scheduler` / `dask worker` processes, and a sweep killed with SIGKILL, are
the slow tests of tests/test_sweep_slow.py.
"""

from __future__ import annotations

import json
import os
import sys
import threading

import numpy as np
import pytest

pytest.importorskip("dask.distributed")
pytest.importorskip("zarr")

from dask.distributed import Client, LocalCluster  # noqa: E402

import attnpaths as ap  # noqa: E402
from attnpaths.cli import main  # noqa: E402
from attnpaths.experiments.sweep import Grid, open_sweep, run_sweep, save_path_features  # noqa: E402
from attnpaths.experiments.sweep import run as sweep_module  # noqa: E402
from attnpaths.experiments.sweep import tasks as sweep_tasks  # noqa: E402

from conftest import random_problem  # noqa: E402

GRID = {"task": "markov", "settings": {"n_train": 20, "n_test": 40},
        "axes": {"N": [10, 30, 100], "temperature": [0.01, 0.1, 1.0, 10.0], "train_seed": [1, 2, 3]}}
FAILING = {"N": 30.0, "temperature": 0.1, "train_seed": 2}


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        with Client(cluster) as c:
            yield c


class Interrupt(Exception):
    pass


# Module-level, so that Dask pickles them by reference: a worker thread runs them in this very module.
REAL_CELL, REAL_SOLVE = sweep_module.run_cell, sweep_tasks.theory_and_gp
CELL_LOG: dict = {}
FAILING_NOW = threading.local()  # a worker thread runs a cell from start to end


def logging_run_cell(task, settings, problem, previous, sampling, draws_path):
    coords = {"N": settings.widths[0], "temperature": settings.temperature, "train_seed": settings.train_seed}
    with open(CELL_LOG["path"], "a") as f:
        f.write(json.dumps(coords) + "\n")
    FAILING_NOW.value = coords == FAILING
    return REAL_CELL(task, settings, problem, previous, sampling, draws_path)


def failing_theory_and_gp(problem, spec, init):
    if FAILING_NOW.value:
        raise RuntimeError("injected failure")
    return REAL_SOLVE(problem, spec, init)


def logged_cells(monkeypatch, log):
    """Make every computed cell append its coordinates to `log`, and make the solve of the cell at FAILING raise
    (inside the cell's computation, where a solver failure would)."""
    CELL_LOG["path"] = str(log)
    monkeypatch.setattr(sweep_module, "run_cell", logging_run_cell)
    monkeypatch.setattr(sweep_tasks, "theory_and_gp", failing_theory_and_gp)


def read_log(log) -> list[tuple]:
    if not log.exists():
        return []
    return [tuple(json.loads(line).values()) for line in log.read_text().splitlines()]


def stored_cells(out) -> set[tuple]:
    ds = open_sweep(out).load()
    done = ds.done.values
    return {(float(ds.N.values[i]), float(ds.temperature.values[j]), int(ds.train_seed.values[k]))
            for i, j, k in zip(*done.nonzero())}


def test_interrupted_sweep_resumes_without_recomputing_and_records_a_failed_cell(tmp_path, client, monkeypatch):
    grid = Grid.from_dict(GRID)
    assert grid.shape == (3, 4, 3)
    log, out = tmp_path / "computed.log", tmp_path / "sweep"
    logged_cells(monkeypatch, log)

    def stop_after_ten(index, result, count=[0]):
        count[0] += 1
        if count[0] == 10:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_sweep(grid, out, client=client, progress=False, log=lambda _: None, callback=stop_after_ten)
    first = stored_cells(out)
    assert len(first) == 10

    computed_before = len(read_log(log))
    summary = run_sweep(grid, out, client=client, resume=True, progress=False, log=lambda _: None)
    resumed = read_log(log)[computed_before:]
    assert len(resumed) == len(set(resumed)) == 36 - 10  # every missing cell once, no stored cell again
    assert set(resumed).isdisjoint(first)
    assert (summary.before, summary.computed, summary.failed) == (10, 26, 1)

    ds = open_sweep(out).load()
    assert bool(ds.done.all())
    failed = ds.sel(**FAILING)
    assert str(failed.error.values).startswith("RuntimeError: injected failure")
    assert np.isnan(float(failed.theory_accuracy))
    ok = (ds.error == "").values
    assert ok.sum() == 35
    assert np.all(np.isfinite(ds.theory_accuracy.values[ok])) and np.all(ds.grad_max.values[ok] < 1e-6)

    n_log = len(read_log(log))
    again = run_sweep(grid, out, client=client, resume=True, progress=False, log=lambda _: None)
    assert again.computed == 0 and len(read_log(log)) == n_log


def test_a_cell_equals_the_direct_computation_and_another_grid_is_not_resumed(tmp_path, client):
    spec, heads, x, y, xt, yt = random_problem((2, 2), n_train=30, n_test=20, seed=3)
    xi, xit = ap.path_features(spec, heads, x), ap.path_features(spec, heads, xt)
    save_path_features(tmp_path / "f.npz", spec, xi, y, xit, yt)
    raw = {"task": "features", "settings": {"path": str(tmp_path / "f.npz")},
           "axes": {"N": [3.0, 30.0], "temperature": [0.05]}}
    out = tmp_path / "out"
    run_sweep(Grid.from_dict(raw), out, client=client, progress=False, log=lambda _: None)
    ds = open_sweep(out).load()
    for N, T in [(3.0, 0.05), (30.0, 0.05)]:
        s = spec.with_width(N).replace(temperature=T)
        saddle = ap.solve_saddle(s, xi, y)
        theory, gp = ap.predict(s, xi, y, xit, saddle.U1), ap.predict(s, xi, y, xit)
        cell = ds.sel(N=N, temperature=T)
        np.testing.assert_allclose(cell.U.values, saddle.U1, rtol=1e-6, atol=1e-8)
        assert float(cell.theory_accuracy) == ap.accuracy(theory.mean, yt)
        np.testing.assert_allclose(float(cell.theory_mse), ap.bias_error(theory.mean, yt), rtol=1e-6)
        np.testing.assert_allclose(float(cell.gp_mse), ap.bias_error(gp.mean, yt), rtol=1e-12)
        assert float(cell.P) == 30

    with pytest.raises(ValueError, match="already holds a sweep; continue it with --resume"):
        run_sweep(Grid.from_dict(raw), out, client=client, progress=False, log=lambda _: None)
    raw["axes"]["temperature"] = [0.2]
    with pytest.raises(ValueError, match="another grid.*axes"):
        run_sweep(Grid.from_dict(raw), out, client=client, resume=True, progress=False, log=lambda _: None)


BAD_GRIDS = [
    ({"tsak": "markov"}, "unknown key.*tsak"),
    ({"task": "markvo"}, "unknown sweep task 'markvo'.*did you mean 'markov'"),
    ({"axes": {"tempreature": [0.1]}}, r"\[axes\] tempreature: unknown setting.*did you mean 'temperature'"),
    ({"axes": {"temperature": [0.1, -1.0]}}, r"\[axes\] temperature: setting 'temperature' must be a number > 0"),
    ({"axes": {"temperature": []}}, "non-empty list"),
    ({"axes": {"temperature": [0.1, 0.1]}}, "must not repeat"),
    ({"axes": {"N": [10, 0]}}, r"\[axes\] N: setting 'widths'"),
    ({"axes": {"widths": [10, 30]}}, "through the axis N"),
    ({"axes": {"alpha": [1.0, -2]}}, "alpha = P/N must be a number > 0"),
    ({"settings": {"samples": True}}, "'samples' cannot be set in a sweep"),
    ({"settings": {"n_test": 5}, "axes": {"n_test": [5, 6]}}, "both fixed in \\[settings\\] and an axis"),
    ({"sampling": {"n_chians": 2}}, r"\[sampling\].*unknown setting 'n_chians'"),
]


@pytest.mark.parametrize("raw, match", BAD_GRIDS, ids=[m[:30] for _, m in BAD_GRIDS])
def test_bad_grids_are_refused_by_name(raw, match):
    with pytest.raises(ValueError, match=match):
        Grid.from_dict(raw)


def test_load_axis_sets_an_even_number_of_examples():
    grid = Grid.from_dict({"axes": {"N": [10, 100], "alpha": [0.1, 0.5, 2.0]}})
    P = {(c.coords["N"], c.coords["alpha"]): grid.cell_settings(c.coords).n_train for c in grid.cells()}
    assert P == {(10.0, 0.1): 2, (10.0, 0.5): 6, (10.0, 2.0): 20, (100.0, 0.1): 10, (100.0, 0.5): 50,
                 (100.0, 2.0): 200}
    assert all(grid.cell_settings(c.coords).widths == (c.coords["N"],) for c in grid.cells())


def test_sweep_command_reads_the_grid_file_and_its_overrides(tmp_path, capsys):
    path = tmp_path / "grid.toml"
    path.write_text('task = "markov"\npreset = "2paths"\n[settings]\nn_test = 50\n[axes]\nN = [10, 100]\n'
                    "temperature = [0.01, 0.1]\n")
    assert main(["sweep", str(path), "--print-settings", "--set", "axes.temperature=0.5,1",
                 "--set", "settings.n_train=40"]) == 0
    text = capsys.readouterr().out
    back = Grid.from_dict(__import__("tomllib").loads(text))
    assert back.axes == {"N": (10.0, 100.0), "temperature": (0.5, 1.0)}
    assert back.base_settings().network == "2paths" and back.base_settings().n_train == 40
    assert main(["sweep", str(path), "--set", "axes.temprature=1"]) == 2
    assert "did you mean 'temperature'" in capsys.readouterr().err


def test_sweep_command_is_a_runner_run_whose_sweep_stage_points_at_the_store(tmp_path, client, monkeypatch):
    from attnpaths._src.store import load_record
    from attnpaths.experiments.runner import load_run_header

    monkeypatch.setattr(sweep_module, "start_client", lambda *a, **k: Client(client.scheduler.address))
    path, out = tmp_path / "grid.toml", tmp_path / "out"
    path.write_text('task = "markov"\n[settings]\nn_train = 10\nn_test = 20\n[axes]\nN = [10, 30]\n'
                    "temperature = [0.1]\n")
    args = ["sweep", str(path), "--out", str(out), "--no-progress"]
    assert main(args) == 0
    assert load_run_header(out)["experiment"] == "sweep"
    record = load_record(out / "stages" / "sweep.npz", kind="stage:sweep").header["output"]
    assert record == {"store": "sweep.zarr", "cells": 2, "failed": 0} and bool(open_sweep(out).done.all())
    assert main(args + ["--resume", "--set", "axes.temperature=1"]) == 2  # another grid: refused by the Runner
    assert main(args + ["--resume"]) == 0


def _thread_affinities():
    """{core set} of every thread of this (worker) process, after it has run JAX."""
    import jax.numpy as jnp

    float(jnp.ones(3).sum())  # start JAX's CPU runtime and its threads
    return sorted({tuple(sorted(os.sched_getaffinity(int(t)))) for t in os.listdir("/proc/self/task")})


@pytest.mark.skipif(not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
                    reason="pins to cores on Linux with at least 2 cores")
def test_local_cluster_workers_each_run_on_their_own_core():
    """The thread flags leave JAX's runtime on more than one core; pinning makes a worker single-threaded in
    fact. Worker i runs every thread on core i; pin=False leaves them on every core, and so does the default
    with fewer workers than cores."""
    cores = tuple(sorted(os.sched_getaffinity(0)))
    one_per_core = len(cores) == 2
    cases = [(True, {((cores[0],),), ((cores[1],),)}), (False, {(cores,)}),
             (None, {((cores[0],),), ((cores[1],),)} if one_per_core else {(cores,)})]
    for pin, expected in cases:
        client = sweep_module.start_client(workers=2, pin=pin)
        try:
            got = {tuple(a) for a in client.run(_thread_affinities).values()}
        finally:
            cluster = client.cluster
            client.close()
            cluster.close()
        assert got == expected, (pin, got)
