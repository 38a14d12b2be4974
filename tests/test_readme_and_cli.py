"""The README quickstart runs as written; the Markov experiment writes its results and figures."""

import json
import re
from pathlib import Path

import numpy as np

from attnpaths.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_readme_opens_with_the_two_commands_and_quickstart_runs():
    text = (ROOT / "README.md").read_text()
    first_block = re.search(r"```\n(.*?)```", text, re.S).group(1)
    assert first_block.splitlines()[0].startswith("make run") and first_block.splitlines()[1].startswith("make test")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 2
    namespace = {}
    for i, code in enumerate(blocks):  # in order, sharing one namespace, as a reader would paste them
        exec(compile(code, f"README python block {i + 1}", "exec"), namespace)
    assert namespace["saddle"].converged and namespace["fit"].converged
    assert np.all(np.isfinite(namespace["pred"].mean))
    assert namespace["draws"].f_test.shape[-1] == 10 and np.all(np.isfinite(namespace["draws"].f_test))


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
