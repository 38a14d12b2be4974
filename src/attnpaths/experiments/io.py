"""Results files (results.json): written atomically so an interrupted job never leaves a half-written file."""

from __future__ import annotations

import json
from pathlib import Path

from attnpaths._src.atomic import write_atomic
from attnpaths._src.store import jsonable


def write_json_atomic(path: str | Path, data: dict) -> None:
    """Write `data` as JSON to `path` through a temporary file and an atomic rename."""
    text = json.dumps(jsonable(data), indent=1).encode()
    write_atomic(path, lambda f: f.write(text))


def read_json(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no results file at {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not a valid results file (corrupt JSON: {err})") from None
