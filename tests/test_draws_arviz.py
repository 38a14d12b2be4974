"""Posterior draws as ArviZ reads them (named variables, dims and path-name coordinates), and the one warning line
every printed R-hat above 1.01 or ESS below 100 carries."""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

az = pytest.importorskip("arviz")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import attnpaths as ap  # noqa: E402
from attnpaths._src.sampling.diagnostics import convergence_warning  # noqa: E402
from attnpaths._src.sampling.draws import PosteriorDraws  # noqa: E402
from attnpaths.experiments.sampling import format_row  # noqa: E402

NAMES = ap.path_labels((2, 2))  # "1,1", "1,2", "2,1", "2,2"


def draws(n_chains=2, n_draws=40, n_test=3, H=4):
    rng = np.random.default_rng(0)
    return PosteriorDraws(rng.normal(size=(n_chains, n_draws, n_test)), rng.normal(size=(n_chains, n_draws, H, H)),
                          1, 1.0)


def test_to_arviz_names_the_theorys_objects():
    d = draws()
    post = d.to_arviz(NAMES).posterior
    assert post["f_test"].dims == ("chain", "draw", "test_example")
    assert post["U_1"].dims == ("chain", "draw", "path_i", "path_j")
    assert list(post.path_i.values) == NAMES and list(post.path_j.values) == NAMES
    np.testing.assert_array_equal(post["U_1"].sel(path_i="1,2", path_j="2,1").values, d.U[:, :, 1, 2])
    assert post["U_1"].attrs["long_name"] and post["f_test"].attrs["units"] == "1"
    assert list(d.to_arviz().posterior.path_i.values) == ["path 1", "path 2", "path 3", "path 4"]
    with pytest.raises(ValueError, match="path_names must be 4 distinct labels"):
        d.to_arviz(NAMES[:3])
    with pytest.raises(ValueError, match="path_names"):
        d.to_arviz(["a", "a", "b", "c"])


def test_summary_trace_and_forest_read_path_names():
    idata = draws().to_arviz(NAMES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # ArviZ 0.2x announces its 1.0 refactor
        table = az.summary(idata, var_names=["U_1"])
        assert "U_1[1,2, 2,1]" in table.index and len(table) == 16
        assert "f_test[2]" in az.summary(idata, var_names=["f_test"]).index
        axes = az.plot_trace(idata, var_names=["U_1"], coords={"path_i": ["1,2"], "path_j": ["2,1", "1,1"]},
                             compact=False)
        assert [a.get_title() for a in axes[:, 0]] == ["U_1\n1,2, 2,1", "U_1\n1,2, 1,1"]
        axes = az.plot_forest(idata, var_names=["U_1"], coords={"path_i": ["1,2"]})
        assert "U_1[1,1]" in [t.get_text() for t in axes[0].get_yticklabels()]
    plt.close("all")


@pytest.mark.parametrize("rhat, ess, warned", [(1.35, 500.0, True), (1.005, 500.0, False), (1.0, 42.0, True),
                                               (1.0, 150.0, False), (math.nan, math.nan, False)])
def test_convergence_warning_thresholds(rhat, ess, warned):
    line = convergence_warning(rhat, ess, "N=10")
    assert bool(line) == warned
    if warned:
        assert line.lstrip().startswith("WARNING N=10")
        assert "--n-samples" in line and "--n-chains" in line  # says what to do


def test_printed_sample_lines_carry_the_warning():
    row = {"N": 10.0, "method": "gibbs", "n_chains": 2, "n_draws": 50, "accuracy": 0.9, "theory_accuracy": 0.9,
           "relative_error_mean": 0.1, "monte_carlo_floor": 0.1, "max_rhat": 1.35, "min_ess": 500.0, "seconds": 1.0}
    lines = format_row(row).splitlines()
    assert len(lines) == 2 and "R-hat 1.35 > 1.01" in lines[1]
    assert len(format_row({**row, "max_rhat": 1.005}).splitlines()) == 1


def test_the_sweep_summary_warns_about_its_unconverged_cells():
    from attnpaths.experiments.sweep import sampling_warning

    store = SimpleNamespace(arrays={"max_rhat": np.array([[1.0, 1.35], [np.nan, 1.2]]),
                                    "min_ess": np.array([[400.0, 300.0], [np.nan, 80.0]])})
    line = sampling_warning(store)
    assert "in 2 of 3 sampled cells" in line and "R-hat 1.35" in line and "ESS 80" in line
    assert "[sampling] n_samples" in line  # the grid's names, not a command's options
    store.arrays["max_rhat"][:] = 1.0
    store.arrays["min_ess"][:] = 400.0
    assert sampling_warning(store) == ""
