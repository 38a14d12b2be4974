"""Results files (results.json, CSV tables): written atomically so an interrupted job never leaves a half-written
file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

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


def write_csv_atomic(path: str | Path, rows: list[dict]) -> None:
    """Write `rows` (dicts of numbers and strings) as a CSV table to `path`, atomically: one row per dict, the
    columns in order of first appearance (a value a row lacks is left empty). The one CSV writer of the
    experiments; it needs neither pandas nor xarray."""
    import csv
    import io

    columns: dict = {}
    for i, row in enumerate(rows):
        for key, value in row.items():
            if not isinstance(value, (str, int, float, bool, np.integer, np.floating, np.bool_)) and value is not None:
                raise ValueError(f"rows must hold numbers and strings; row {i} has {key!r} = {type(value).__name__}")
            columns.setdefault(key, None)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows([{k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()} for row in rows])
    data = text.getvalue().encode()
    write_atomic(path, lambda f: f.write(data))
