"""The README is a landing page whose examples run as written; the Markov experiment writes its results and
figures; the command line reports bad input and missing extras without a traceback."""

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from attnpaths.cli import main
from attnpaths.experiments.markov.figures import gp_lines

ROOT = Path(__file__).resolve().parents[1]


def test_readme_opens_with_the_two_commands_and_quickstart_runs():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 120, "the README is a landing page; the details live on the docs site"
    first_block = re.search(r"```\n(.*?)```", text, re.S).group(1)
    assert first_block.splitlines()[0].startswith("make run") and first_block.splitlines()[1].startswith("make test")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks
    for i, code in enumerate(blocks):  # each on its own, as a reader would paste any one of them
        namespace = {}
        exec(compile(code, f"README python block {i + 1}", "exec"), namespace)
    namespace = {}
    exec(compile(blocks[0], "README quickstart", "exec"), namespace)
    assert namespace["saddle"].converged and np.all(np.isfinite(namespace["pred"].mean))


def test_readme_links_exist():
    text = (ROOT / "README.md").read_text()
    targets = [t.split("#")[0] for t in re.findall(r"\]\(([^)\s]+)\)", text) if "://" not in t]
    assert targets, "the README links to the docs pages"
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing, f"README links to missing files {missing}"


def test_gp_reference_lines_that_coincide_are_drawn_once():
    two_paths = gp_lines({"all paths": 0.827, "g+d": 0.827})  # the 2-path network is its own reference
    assert len(two_paths) == 1 and "all paths" in two_paths[0][2] and "g+d" in two_paths[0][2]
    four_paths = gp_lines({"all paths": 0.795, "good": 0.945, "good+denoising": 0.943})
    assert [v for v, _, _ in four_paths] == [0.795, 0.945, 0.943]
    assert len({style for _, style, _ in four_paths}) == 3 and len({label for _, _, label in four_paths}) == 3


@pytest.mark.parametrize("command", ["phase-map", "finite-size"])
def test_studies_without_dask_say_how_to_install_it(command, tmp_path, monkeypatch, capsys):
    for module in ["dask", "dask.array", "dask.distributed", "distributed", "xarray", "zarr"]:
        monkeypatch.setitem(sys.modules, module, None)  # import of a None entry raises ImportError
    assert main([command, "--preset", "quick", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"attnpaths {command}: error:" in err and "pip install 'attnpaths[sweep]'" in err
    assert "Traceback" not in err


def test_markov_experiment_end_to_end(tmp_path):
    assert main(["markov", "--widths", "10", "1000", "--n-test", "400", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    for name in ["accuracy_vs_width.png", "order_parameters.png", "alignment.png"]:
        assert (tmp_path / name).stat().st_size > 5000
    by_n = {t["N"]: t for t in results["theory"]}
    gp_all = results["gp_accuracy"]["all paths"]
    # the paper's claim (spec D.4): well above the all-paths GP at N = 10, approaching it at large N
    assert by_n[10.0]["accuracy"] > gp_all + 0.08
    assert abs(by_n[1000.0]["accuracy"] - gp_all) < 0.04
    assert all(t["grad_max"] <= 1e-8 and t["min_hessian_eigenvalue"] > 0 for t in results["theory"])
    U10 = np.array(by_n[10.0]["U"][0])
    g, d = results["path_names"].index("g"), results["path_names"].index("d")
    assert U10[g, d] < 0 and U10[g, g] > U10[d, d] > 1  # good path weighted most, negative g-d correlation
    fw, gp = results["alignment"]["finite_width"], results["alignment"]["gp"]
    assert max(fw[:5]) > max(gp[:5])  # the top kernel PCs align better with the labels at finite width
    assert results["inputs"]["train_seed"] == 27


def test_cli_reports_bad_input(capsys):
    assert main(["markov", "--widths", "-5", "--out", "/tmp/unused"]) == 2
    assert "setting 'widths' must be a list with every entry a number > 0 (-5.0 is not)" in capsys.readouterr().err


def test_markov_with_samples_and_sample_command(tmp_path):
    args = ["markov", "--widths", "10", "1000", "--n-test", "200", "--out", str(tmp_path), "--samples",
            "--sample-widths", "10", "--n-samples", "40", "--n-chains", "2", "--n-warmup", "20"]
    assert main(args) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    (row,) = results["samples"]
    assert row["N"] == 10.0 and row["n_chains"] == 2 and row["n_draws"] == 40
    assert 0 < row["relative_error_mean"] < 0.3 and row["monte_carlo_floor"] > 0
    assert np.array(row["U"]).shape == (4, 4) and abs(row["accuracy"] - row["theory_accuracy"]) < 0.1
    assert (tmp_path / "samples" / "gibbs_N10.npz").is_file()
    # the same run again without --resume refuses to touch the existing draws; with it, continues to more draws
    assert main(args) == 2
    assert main(["sample", str(tmp_path), "--widths", "10", "--n-samples", "60", "--n-chains", "2",
                 "--n-warmup", "20", "--resume"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["samples"][0]["n_draws"] == 60
    assert main(["sample", str(tmp_path), "--widths", "30"]) == 2  # no theory solution at N = 30
