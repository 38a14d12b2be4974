"""The documentation site: it builds with `mkdocs build --strict` (the executed tutorial notebook included),
every Python example on it runs, every command on it parses, and the API reference covers the public names.

Python examples are run with mktestdocs (`check_md_file(memory=True)`: the blocks of a page run in order in
one namespace, so a page can build on its earlier blocks). mktestdocs runs only fences whose info string is
exactly `python`; the fence check below makes that a rule, so no block is skipped by accident.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from mktestdocs import check_md_file

import attnpaths
from attnpaths.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
COMMANDS = DOCS / "snippets" / "commands.sh"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "snippets" not in p.parts)
FENCE = re.compile(r"^(?P<indent> *)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```", re.S | re.M)
# pages allowed to show Python that the suite does not run (info string `py`), and why
NOT_RUN = {"sweeps.md": "Dask cluster / SLURM recipes: they start worker processes or need SLURM (CI has none)"}
SECTION = re.compile(r"--8<-- \[start:(?P<name>[\w-]+)\]\n(?P<body>.*?)--8<-- \[end:(?P=name)\]", re.S)


def fences(page: Path) -> list[tuple[str, str]]:
    return [(m["info"].strip(), m["body"]) for m in FENCE.finditer(page.read_text())]


def command_sections() -> dict[str, list[str]]:
    """Section name -> its command lines (comments stripped) in docs/snippets/commands.sh."""
    out = {}
    for m in SECTION.finditer(COMMANDS.read_text()):
        lines = [line.split(" #")[0].strip() for line in m["body"].splitlines()]
        out[m["name"]] = [line for line in lines if line and not line.startswith("#")]
    return out


def test_site_builds_strict_with_the_executed_tutorial(tmp_path):
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                          "--site-dir", str(site)], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log
    assert not [line for line in log.splitlines() if line.startswith("WARNING")], log
    tutorial = (site / "tutorial" / "index.html").read_text()
    assert "Newton steps" in tutorial and "data:image/png" in tutorial  # executed: printed output and a plot
    assert not re.search(r"\w+Warning: ", tutorial), "the executed tutorial shows a warning"
    api = (site / "api" / "index.html").read_text()
    missing = [name for name in attnpaths.__all__ if f'id="attnpaths.{name}"' not in api]
    assert not missing, f"API reference lacks rendered entries for {missing}"


def test_api_reference_lists_exactly_the_public_names():
    documented = re.findall(r"^::: attnpaths\.(\w+)\s*$", (DOCS / "api.md").read_text(), re.M)
    assert len(documented) == len(set(documented)), "a name is documented twice"
    assert set(documented) == set(attnpaths.__all__), (
        f"undocumented: {sorted(set(attnpaths.__all__) - set(documented))}; "
        f"not public: {sorted(set(documented) - set(attnpaths.__all__))}")


def test_every_code_fence_is_run_or_declared():
    for page in PAGES:
        for info, body in fences(page):
            name = page.relative_to(DOCS).as_posix()
            assert info in {"python", "py", "bash", "text", ""} or not info.startswith("py"), (name, info)
            if info == "py":  # shown, not run: only where a reason is declared, and the block says so
                assert name in NOT_RUN, f"{name}: a ```py block is not run; use ```python or declare why"
                assert body.startswith("# not run by the test suite:"), (name, body[:80])
            if info == "bash":  # commands come from the one commands file, never typed into a page
                assert all(line.startswith('--8<-- "commands.sh:') for line in body.strip().splitlines()), (
                    f"{name}: a bash block must only include sections of docs/snippets/commands.sh")


@pytest.mark.parametrize("page", [p for p in PAGES if any(i == "python" for i, _ in fences(p))],
                         ids=lambda p: p.relative_to(DOCS).as_posix())
def test_python_examples_run(page, tmp_path, monkeypatch, registries_restored):
    monkeypatch.chdir(tmp_path)  # an example that writes files writes them here
    check_md_file(fpath=page, memory=True)


def help_text(command: str, capsys) -> str:
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    return capsys.readouterr().out


def test_commands_on_the_site_exist(capsys):
    sections = command_sections()
    included = set(re.findall(r'--8<-- "commands.sh:([\w-]+)"', "".join(p.read_text() for p in PAGES)))
    assert included == set(sections), f"unused sections {set(sections) - included}, unknown {included - set(sections)}"
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    helps: dict[str, str] = {}
    checked = 0
    for name, lines in sections.items():
        for line in lines:
            words = shlex.split(line)
            if words[0] == "make":
                assert words[1] in targets, line
            elif words[0] == "attnpaths":
                build_parser().parse_args(words[1:])  # a usage error (SystemExit) fails the test
                # argparse also takes unambiguous prefixes (--temp for --temperature): the site spells them out
                helps.setdefault(words[1], help_text(words[1], capsys))
                for option in (w.split("=")[0] for w in words[2:] if w.startswith("--")):
                    assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", helps[words[1]]), (
                        f"{line}: {option} is not an option of `attnpaths {words[1]}`")
                checked += 1
            elif words[0].endswith("python"):
                assert (ROOT / words[1]).is_file(), line
    assert checked >= 8
