"""Progress over the theory grids: a tqdm bar on stderr whose postfix shows the running solve's iteration and
max|dS/dU|; `--no-progress` (the settings field `progress`) silences it; stdout (what tests and users read) keeps
only the log lines."""

from __future__ import annotations

import re

import numpy as np
import pytest

from attnpaths.cli import main
from attnpaths.experiments import sweep
from attnpaths.experiments.finite_size import FiniteSizeSettings, run_finite_size
from attnpaths.experiments.oneshot.settings import OneShotSettings
from attnpaths.experiments.oneshot.theory import Features, theory_stage
from attnpaths.experiments.phase_map import PhaseMapSettings, run_phase_map

# the postfix after a solve: its width (and T), its last trust-region iteration and gradient
POSTFIX = r"N=10 iter \d+ max\|dS/dU\| \d\.\de[-+]\d\d"


def test_markov_shows_the_theory_grid_on_stderr_and_no_progress_silences_it(tmp_path, capsys):
    small = ["markov", "--widths", "10", "100", "--n-train", "20", "--n-test", "20"]
    assert main(small + ["--out", str(tmp_path / "bar")]) == 0
    out, err = capsys.readouterr()
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert re.search(r"^theory T=0\.01: 100%.* 2/2 \[.*" + POSTFIX + r"\]$", last), last
    # the postfix ends on the last solve's final iteration and gradient, as its log line reports them
    steps, grad = re.search(r"N=10: .* (\d+) Newton steps, max\|dS/dU\|=(\S+),", out).groups()
    assert last.endswith(f"N=10 iter {steps} max|dS/dU| {grad}]"), (last, steps, grad)
    assert "N=100 iter 1 max|dS/dU|" in err  # the first iteration of every solve is shown
    assert "N=10: accuracy" in out and "solve/s" not in out
    assert main(small + ["--out", str(tmp_path / "quiet"), "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "N=10: accuracy" in out and "theory T=" not in err and "solve/s" not in err


def one_shot_grid(progress: bool, path):
    rng = np.random.default_rng(0)
    w = rng.normal(size=3)

    def episodes(n):
        xi = rng.normal(size=(n, 3, 2))
        return xi, np.sign(xi[:, :, 0] @ w + 3 * rng.normal(size=n))

    (x, y), (xv, yv) = episodes(16), episodes(40)
    s = OneShotSettings(heads=(2,), widths=(10.0, 100.0), temperatures=(0.01, 0.1), extra_temperatures=(1.0,),
                        progress=progress)
    lines = []
    theory_stage(s, Features(x, y, {"validation": (xv, yv, None)}), path, lines.append)
    return lines


def test_one_shot_grid_counts_every_solve_including_added_temperatures(tmp_path, capsys):
    lines = one_shot_grid(True, tmp_path / "a.npz")
    err = capsys.readouterr().err
    assert "  theory: the highest temperature is chosen; adding T = 1" in lines  # the grid grew from 4 to 6
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert re.search(r"^theory: 100%.* 6/6 \[.*" + POSTFIX.replace("N=10", "N=10 T=1") + r"\]$", last), last
    one_shot_grid(False, tmp_path / "b.npz")
    assert capsys.readouterr().err == ""


class _Stop(Exception):
    pass


@pytest.mark.parametrize("run, settings", [(run_phase_map, PhaseMapSettings), (run_finite_size, FiniteSizeSettings)],
                         ids=["phase-map", "finite-size"])
@pytest.mark.parametrize("progress", [True, False])
def test_sweep_experiments_hand_progress_to_the_sweeps_cell_bar(run, settings, progress, monkeypatch, tmp_path):
    # their grids run as Dask cells; the bar over cells is the sweep's, switched by the same setting
    seen = {}

    def run_sweep(grid, out, **kwargs):
        seen.update(kwargs)
        raise _Stop

    monkeypatch.setattr(sweep.command, "run_sweep", run_sweep)  # the sweep stage's
    with pytest.raises(_Stop):
        run(settings(progress=progress), tmp_path)
    assert seen["progress"] is progress
