"""Long validation runs (skipped in CI; `pytest -m slow`): the paper's Fig. 2 claims at every width."""

import numpy as np
import pytest

from attnpaths.experiments.markov import MarkovSettings, run_markov


@pytest.mark.slow
def test_four_path_sweep_reproduces_fig2c():
    r = run_markov(MarkovSettings(network="4paths"), log=lambda *_: None)
    acc = np.array([t["accuracy"] for t in r["theory"]])  # widths 10 ... 1000
    gp = r["gp_accuracy"]
    assert np.all(np.diff(acc) <= 0.005)  # falls towards the GP as N grows
    assert acc[0] > gp["all paths"] + 0.1 and acc[0] >= gp["good"] - 0.01
    assert abs(acc[-1] - gp["all paths"]) < 0.03
    off = [np.abs(np.array(t["U"][0]) - np.diag(np.diag(t["U"][0]))).max() for t in r["theory"]]
    assert np.all(np.diff(off) < 0) and off[-1] < 0.05  # cross-path weights vanish with N
    assert np.allclose(np.diag(r["theory"][-1]["U"][0]), 1.0, atol=0.3)  # GP value I plus O(P/N)


@pytest.mark.slow
def test_two_path_sweep_reproduces_fig2e():
    r = run_markov(MarkovSettings(network="2paths"), log=lambda *_: None)
    acc = np.array([t["accuracy"] for t in r["theory"]])
    assert acc[0] > r["gp_accuracy"]["all paths"] + 0.08
    U10 = np.array(r["theory"][0]["U"][0])
    assert U10[0, 1] < -1.0 and U10[0, 0] > U10[1, 1]  # g weighted most, negative g-d correlation
    assert abs(r["theory"][-1]["U"][0][0][1]) < 0.1
