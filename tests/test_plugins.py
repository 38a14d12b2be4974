"""Plugins: a package installed beside attnpaths with an entry point in the group `attnpaths.plugins` adds its
experiment to the installed `attnpaths` command; a broken plugin is one warning line, not a crash.

The plugin is "installed" the way pip lays out a wheel (a module and its `.dist-info` with `entry_points.txt`) in
a temporary site folder put on PYTHONPATH, which works offline and in a second; the real `attnpaths` executable
of this environment runs in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import attnpaths

PLUGIN = '''
from dataclasses import dataclass
from pathlib import Path

from attnpaths.experiments import EXPERIMENTS, Experiment, Registry, Settings, setting
from attnpaths.experiments.io import write_json_atomic
from attnpaths.experiments.runner import Runner


@dataclass(frozen=True)
class ToySettings(Settings):
    """The toy plugin's settings."""

    n: int = setting(3, "how many squares")


@dataclass(frozen=True)
class Squares:
    values: list


def squares(s: ToySettings) -> Squares:
    return Squares([k * k for k in range(s.n)])


def run(s, out, resume, log):
    with Runner(out, "toy-squares", s, resume, log) as r:
        result = {"squares": r.stage("squares", squares, s).values}
        write_json_atomic(Path(out) / "results.json", result)
    log("toy plugin ran")
    return result


EXPERIMENTS.register("toy-squares", Experiment(
    name="toy-squares", help="the toy plugin's squares", settings=ToySettings,
    presets=Registry("preset of toy-squares"), run=run, report=lambda r, sec: [f"{len(r['squares'])} squares"]))
'''


def _install(site: Path, dist: str, module: str, source: str, entry: str) -> None:
    """What `pip install` leaves in a site folder: the module and its .dist-info (METADATA, entry points)."""
    (site / f"{module}.py").write_text(source)
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[attnpaths.plugins]\n{entry}\n")
    (info / "top_level.txt").write_text(module + "\n")


def _attnpaths(args, site: Path, cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("attnpaths")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "attnpaths.cli"]
    src = Path(attnpaths.__file__).parents[1]  # this checkout's sources, as the suite imports them
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(src)]))
    return subprocess.run(cmd + list(args), capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


@pytest.fixture
def site(tmp_path):
    folder = tmp_path / "site"
    folder.mkdir()
    return folder


def test_an_installed_plugin_adds_a_command_that_runs(site, tmp_path):
    _install(site, "attnpaths-toy", "toy_plugin", textwrap.dedent(PLUGIN), "toy = toy_plugin")
    shown = _attnpaths(["--help"], site, tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "toy-squares" in shown.stdout and "the toy plugin's squares" in shown.stdout
    assert "warning" not in shown.stderr
    done = _attnpaths(["toy-squares", "--n", "4", "--out", str(tmp_path / "out")], site, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "toy plugin ran" in done.stdout and "4 squares" in done.stdout
    assert json.loads((tmp_path / "out" / "results.json").read_text()) == {"squares": [0, 1, 4, 9]}


def test_a_broken_plugin_is_one_warning_line_not_a_crash(site, tmp_path):
    _install(site, "attnpaths-broken", "broken_plugin", "raise ImportError('needs torch')\n",
             "broken = broken_plugin")
    _install(site, "attnpaths-bad-hook", "bad_hook", "def register():\n    raise RuntimeError('boom')\n",
             "hook = bad_hook:register")
    shown = _attnpaths(["--help"], site, tmp_path)
    assert shown.returncode == 0
    assert "markov" in shown.stdout and "sweep" in shown.stdout  # the library's own commands are all there
    lines = shown.stderr.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in shown.stderr
    assert lines[0].startswith("attnpaths: warning: plugin 'broken' (broken_plugin from attnpaths-broken)")
    assert "ImportError: needs torch" in lines[0]
    assert lines[1].startswith("attnpaths: warning: plugin 'hook'") and "RuntimeError: boom" in lines[1]
