"""Every store and table the commands write opens with plain xarray, warnings as errors, and describes itself:
CF `long_name` and `units` on every variable and coordinate, path names as path coordinates, labelled plots.

The commands run their smallest grids on an in-process Dask cluster (as tests/test_sweep.py does); the
`phase-map` and `finite-size` commands, which start their own cluster, are given a client of the same one.
"""

from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest

pytest.importorskip("dask.distributed")
pytest.importorskip("zarr")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import xarray as xr  # noqa: E402
from dask.distributed import Client, LocalCluster  # noqa: E402

import attnpaths as ap  # noqa: E402
from attnpaths.experiments.sweep import run as sweep_module  # noqa: E402
from attnpaths.experiments.cf import unlabelled  # noqa: E402
from attnpaths.experiments.io import to_netcdf  # noqa: E402
from attnpaths.experiments.finite_size import FiniteSizeSettings, run_finite_size  # noqa: E402
from attnpaths.experiments.markov import MarkovSettings, run_markov  # noqa: E402
from attnpaths.experiments.phase_map import PhaseMapSettings, run_phase_map  # noqa: E402
from attnpaths.experiments.sweep import run_sweep  # noqa: E402
from attnpaths.experiments.sweep.grid import Grid  # noqa: E402

GRID = {"task": "markov", "settings": {"n_train": 10, "n_test": 20},
        "axes": {"network": ["4paths"], "N": [10, 30], "temperature": [0.1, 1.0]}}


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as c:
        yield c


@pytest.fixture
def own_cluster(cluster, monkeypatch):
    """The commands start their own client: give them one of the test's cluster (closing it leaves the cluster)."""
    monkeypatch.setattr(sweep_module, "start_client", lambda *a, **k: Client(cluster.scheduler_address))


def open_strict(opener, path):
    """Open and load a results file with every warning an error (the metadata, the dtypes, the decoding)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return opener(path).load()


def assert_self_describing(ds):
    assert not unlabelled(ds), f"variables or coordinates without long_name/units: {unlabelled(ds)}"
    for name, v in {**ds.coords, **ds.data_vars}.items():
        assert isinstance(v.attrs["long_name"], str) and isinstance(v.attrs["units"], str), name
        assert "description" not in v.attrs, name


def axis_text(label: str) -> str:
    return " ".join(label.split())  # xarray wraps a long label over lines


def zarr_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if type(w.message).__module__.startswith("zarr")
            or "Consolidated" in str(w.message)]


def test_sweep_store_opens_cleanly_mid_sweep_and_after(tmp_path, cluster):
    grid, out = Grid.from_dict(GRID), tmp_path / "sweep"

    class Stop(Exception):
        pass

    def stop_after_one(index, result):
        raise Stop

    with Client(cluster) as client, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(Stop):
            run_sweep(grid, out, client=client, progress=False, callback=stop_after_one)
        assert (out / "grid.toml").is_file()  # there from the start
        assert Grid.from_toml(out / "grid.toml").identity() == grid.identity()
        mid = open_strict(xr.open_zarr, out / "sweep.zarr")
        assert int(mid.done.sum()) == 1
        assert_self_describing(mid)
        run_sweep(grid, out, client=client, progress=False, resume=True)
    assert not zarr_warnings(caught), zarr_warnings(caught)

    ds = open_strict(xr.open_zarr, out / "sweep.zarr")
    assert bool(ds.done.all())
    assert_self_describing(ds)
    names = ap.path_labels((2, 2))
    assert list(ds.path_i.values) == names and list(ds.path_j.values) == names
    assert ds.network.values.tolist() == ["4paths"]
    assert ds.temperature.attrs["long_name"] == "Bayesian temperature T (likelihood variance)"
    assert ds.theory_seconds.attrs["units"] == "s" and ds.theory_accuracy.attrs["units"] == "1"
    # path "1,2" (head 1 of layer 1, head 2 of layer 2) is the second path of the library's order
    np.testing.assert_array_equal(ds.U.sel(path_i="1,1", path_j="1,2").values, ds.U.values[..., 0, 1])

    ax = ds.theory_accuracy.sel(network="4paths").plot(x="temperature", hue="N")[0].axes
    ylabel, xlabel = axis_text(ax.get_ylabel()), axis_text(ax.get_xlabel())
    plt.close("all")
    assert ds.theory_accuracy.attrs["long_name"] in ylabel and "[1]" in ylabel, ylabel
    assert ds.temperature.attrs["long_name"] in xlabel and "[1]" in xlabel, xlabel

    nc = open_strict(xr.open_dataset, to_netcdf(ds, tmp_path / "sweep.nc"))
    assert_self_describing(nc)
    assert list(nc.path_i.values) == names
    np.testing.assert_array_equal(nc.theory_accuracy.values, ds.theory_accuracy.values)
    assert nc.attrs["task"] == "markov"


def test_phase_map_and_finite_size_tables_are_labelled(tmp_path, own_cluster):
    out = tmp_path / "phase"
    s = PhaseMapSettings().updated({"networks": ["4paths"], "widths": [10.0], "alphas": [1.0, 5.0],
                                    "temperatures": [0.1], "draws": 2, "n_test": 20})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_phase_map(s, out, log=lambda line: None)
    assert not zarr_warnings(caught), zarr_warnings(caught)
    assert_self_describing(open_strict(xr.open_zarr, out / "sweep.zarr"))
    table = open_strict(xr.open_dataset, out / "phase_map.nc")
    assert_self_describing(table)
    assert table.network.values.tolist() == ["4paths"]
    rows = list(csv.DictReader((out / "phase_map.csv").open()))
    assert len(rows) == 2 and float(rows[0]["delta_accuracy"]) == pytest.approx(
        float(table.delta_accuracy.sel(alpha=1.0).item()))
    stages_then_results_and_figures_without_the_store("phase-map", s, out, tmp_path)

    out = tmp_path / "finite"
    s = FiniteSizeSettings().updated({"alphas": [0.5], "widths": [10.0, 20.0], "draws": 2, "n_test": 10,
                                      "n_samples": 8, "n_chains": 2, "n_warmup": 2, "n_bootstrap": 100})
    run_finite_size(s, out, log=lambda line: None)
    assert_self_describing(open_strict(xr.open_zarr, out / "sweep.zarr"))
    table = open_strict(xr.open_dataset, out / "finite_size.nc")
    assert_self_describing(table)
    assert table.max_rhat.attrs["long_name"].startswith("worst split R-hat")
    rows = list(csv.DictReader((out / "finite_size.csv").open()))
    assert [float(r["N"]) for r in rows] == [10.0, 20.0]
    stages_then_results_and_figures_without_the_store("finite-size", s, out, tmp_path)


def stages_then_results_and_figures_without_the_store(name, s, out, tmp_path):
    """The sweep is a stage whose output is the store, reduced by the next stage: a resumed finished run rebuilds
    results.json from the stage records alone, and the experiment's figures need only the results."""
    import json
    import shutil

    from attnpaths.experiments.base import EXPERIMENTS

    assert sorted(p.name for p in (out / "stages").iterdir()) == ["sweep.npz", "table.npz"]
    results = (out / "results.json").read_text()
    shutil.rmtree(out / "sweep.zarr")
    (out / "results.json").unlink()
    again = EXPERIMENTS[name].run(s, out, True, lambda line: None)
    assert json.loads((out / "results.json").read_text()) == json.loads(results)
    figures = tmp_path / f"{name}-figures"
    figures.mkdir()
    files = EXPERIMENTS[name].draw(json.loads(results), figures)
    assert files and all(f.parent == figures and f.stat().st_size > 5000 for f in files)
    assert EXPERIMENTS[name].draw(again, figures) == files


def test_markov_run_writes_its_table_as_csv(tmp_path):
    s = MarkovSettings().updated({"widths": [10.0, 30.0], "n_train": 10, "n_test": 20})
    results = run_markov(s, tmp_path, log=lambda line: None)
    rows = list(csv.DictReader((tmp_path / "markov.csv").open()))
    assert [float(r["N"]) for r in rows] == [10.0, 30.0]
    assert [float(r["accuracy"]) for r in rows] == [r["accuracy"] for r in results["theory"]]
    assert float(rows[1]["action"]) == results["theory"][1]["action"]
    assert results["inputs"]["network"] == "4paths" and "preset" not in results["inputs"]  # a network, no preset
