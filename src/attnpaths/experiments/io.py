"""Results files: written atomically so an interrupted job never leaves a half-written file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from attnpaths._src.atomic import write_atomic


def _to_jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _to_jsonable(obj.tolist())
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    if hasattr(obj, "__array__"):
        return _to_jsonable(np.asarray(obj))
    return obj


def write_json_atomic(path: str | Path, data: dict) -> None:
    """Write `data` as JSON to `path` through a temporary file and an atomic rename."""
    text = json.dumps(_to_jsonable(data), indent=1).encode()
    write_atomic(path, lambda f: f.write(text))


def read_json(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no results file at {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not a valid results file (corrupt JSON: {err})") from None
