"""The command line's answers to bad input: one table, each row a command and the exact error it gets.

Usage errors (an unknown preset or choice) are argparse's: exit status 2 and the message on stderr. Errors in
what the options say (an unknown --set key, a bad value, a missing or damaged file, an unwritable --out) are the
library's: exit status 2 and one line `attnpaths CMD: error: ...` naming the key or file, never a traceback.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from attnpaths._src.store import save_record
from attnpaths.cli import main


def _damaged_run(tmp_path):
    (tmp_path / "run.npz").write_bytes(b"PK\x03\x04 this is not a zip file")
    return tmp_path


def _run_of_another_format(tmp_path):
    header = json.dumps({"format": "attnpaths-record/9", "kind": "run", "experiment": "markov"})
    np.savez(tmp_path / "run.npz", __header__=np.asarray(header))
    return tmp_path


def _incomplete_run(tmp_path):
    save_record(tmp_path / "run.npz", "run", {"experiment": "markov"}, {})
    return tmp_path


def _run_of(experiment):
    """A folder whose run.npz says it holds a run of `experiment` (what sample reads first)."""
    def make(tmp_path):
        save_record(tmp_path / "run.npz", "run", {"experiment": experiment, "settings": {}, "all_settings": {}}, {})
        return str(tmp_path)
    return make


def _grid(tmp_path, text):
    path = tmp_path / "grid.toml"
    path.write_text(text)
    return str(path)


# (arguments as a function of tmp_path, the text the error must contain)
CASES = {
    "unknown preset": (lambda t: ["markov", "--preset", "nope", "--out", str(t)], "invalid choice: 'nope'"),
    "unknown network": (lambda t: ["markov", "--network", "9paths", "--out", str(t)], "9paths"),
    "unknown --set key": (lambda t: ["markov", "--set", "widht=10", "--out", str(t)], "widht"),
    "--set without =": (lambda t: ["markov", "--set", "widths", "--out", str(t)], "key=value; got 'widths'"),
    "negative width": (lambda t: ["markov", "--set", "widths=-1", "--out", str(t)], "widths"),
    "text for a number": (lambda t: ["markov", "--n-test", "many", "--out", str(t)], "many"),
    "missing --config": (lambda t: ["markov", "--config", str(t / "none.toml"), "--out", str(t)], "none.toml"),
    "unknown key in --config": (lambda t: ["markov", "--config", _grid(t, "widthz = [10]\n"), "--out", str(t)],
                                "widthz"),
    "bad TOML in --config": (lambda t: ["markov", "--config", _grid(t, "widths = [10\n"), "--out", str(t)],
                             "grid.toml"),
    "unwritable --out": (lambda t: ["markov", "--set", "widths=10", "--out", "/proc/attnpaths-out"],
                         "/proc/attnpaths-out"),
    "sample: folder without a run": (lambda t: ["sample", str(t)], "no run.npz"),
    "sample: damaged run.npz": (lambda t: ["sample", str(_damaged_run(t))], "run.npz"),
    "sample: run of another format": (lambda t: ["sample", str(_run_of_another_format(t))],
                                      "attnpaths-record/1"),
    "sample: incomplete run.npz": (lambda t: ["sample", str(_incomplete_run(t))], "lacks settings, all_settings"),
    "sample: a sweep": (lambda t: ["sample", _run_of("sweep")(t)], "holds a sweep (`attnpaths sweep`), which has "
                        "no posterior to sample; a sweep samples in its cells when its grid file has a [sampling]"),
    "sample: a phase map": (lambda t: ["sample", _run_of("phase-map")(t)], "`attnpaths markov --widths N --samples`"),
    "sample: a finite-size study": (lambda t: ["sample", _run_of("finite-size")(t)],
                                    "holds a finite-size study (`attnpaths finite-size`), which samples every "
                                    "cell itself and has no one posterior to sample; its cells are many networks"),
    "sample: unknown method": (lambda t: ["sample", str(t), "--method", "metropolis"], "metropolis"),
    "oneshot: unknown data source": (lambda t: ["oneshot", "--data", "cifar", "--out", str(t)], "cifar"),
    "oneshot: bad patch size": (lambda t: ["oneshot", "--set", "patch_size=0", "--out", str(t)], "patch_size"),
    "sweep: missing grid file": (lambda t: ["sweep", str(t / "grid.toml"), "--out", str(t / "s")], "grid.toml"),
    "sweep: unknown axis": (lambda t: ["sweep", _grid(t, 'task = "markov"\n[axes]\nwidht = [10]\n'), "--out",
                                       str(t / "s")], "widht"),
    "sweep: unknown task": (lambda t: ["sweep", _grid(t, 'task = "imagenet"\n[axes]\nN = [10]\n'), "--out",
                                       str(t / "s")], "imagenet"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_command_line_gets_a_clear_error(name, tmp_path, capsys):
    args, message = CASES[name]
    try:
        status = main(args(tmp_path))
    except SystemExit as exit_:  # argparse's usage errors
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("attnpaths") and ": error: " in line]
    assert len(errors) == 1, err  # one error line (argparse prints its usage above it)
    assert message in errors[0], err

