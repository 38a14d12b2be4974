"""tools/mutation.py's bookkeeping: results rows follow their mutants across edits of the module."""

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tool(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("mutation_tool", ROOT / "tools" / "mutation.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "mutation_tool", module)  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "attnpaths", src / "attnpaths")
    monkeypatch.setattr(module, "SRC", src)
    return module


def _row(m, status, line_text):
    return {"module": m.module, "index": m.index, "line": m.line, "col": m.col, "operator": m.operator,
            "before": m.before, "after": m.after, "status": status, "seconds": 1.0, "killed_by": "",
            "source_line": line_text}


def test_migrate_keeps_a_mutants_reruns_with_it_across_an_edit(tool, tmp_path, capsys):
    """A campaign row (survived) and its rerun (killed) of one mutant, and another mutant's row: after an edit that
    adds a mutant above them, every row has its mutant's new index, and the report scores the rerun."""
    ms = tool.mutants("whitened")
    first, second = ms[3], ms[8]
    lines = (tool.SRC / tool.MODULES["whitened"][0]).read_text().splitlines()
    results = tmp_path / "whitened.jsonl"
    rows = [_row(first, "survived", lines[first.line - 1].strip()),
            _row(second, "killed", lines[second.line - 1].strip()),
            _row(first, "killed", lines[first.line - 1].strip())]  # the rerun, appended later
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = tool.SRC / tool.MODULES["whitened"][0]
    source = path.read_text()
    head = source.index("\ndef ")
    path.write_text(source[:head] + "\n_EXTRA = 0.5 * 3\n" + source[head:])  # new mutants above every function
    tool._current.cache_clear()
    tool._functions.cache_clear()
    now = tool.mutants("whitened")
    shift = len(now) - len(ms)  # the new line's mutants, all before the old ones
    assert shift > 0
    assert all((now[m.index + shift].operator, now[m.index + shift].line) == (m.operator, m.line + 2) for m in ms)
    out = tmp_path / "now.jsonl"
    tool.migrate(results, out)
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["status"] for r in got] == ["survived", "killed", "killed"]
    assert [r["index"] for r in got] == [first.index + shift, first.index + shift, second.index + shift]
    assert [r["line"] for r in got] == [first.line + 2, first.line + 2, second.line + 2]
    capsys.readouterr()
    tool.report([out])
    report = capsys.readouterr().out
    whitened = next(line for line in report.splitlines() if line.startswith("whitened"))
    assert whitened.split()[1:3] == ["2", "2"]  # two mutants, both killed
