"""The one persistence format of the package: a record = a JSON header + named float/int arrays in one .npz.

Checkpoints, posterior-sample stores and experiment stage outputs are all records. A record is written whole,
to a temporary file in the same folder that then replaces the old one (`write_atomic`), so a crash leaves either
the old or the new record, never a half-written one. Every header carries the format tag, the record's `kind`
(what wrote it, e.g. "gibbs-draws", "training-checkpoint", "stage:theory") and the library version. Reading checks
all three and turns any damage (truncated zip, bad JSON, missing entry, foreign file) into one `ValueError` that
names the file, so a user never sees a `BadZipFile` traceback.

    save_record(path, "stage:theory", {"settings": {...}}, {"U1": U1})
    header, arrays = load_record(path, kind="stage:theory")
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Mapping, NamedTuple

import numpy as np

from attnpaths._src.atomic import write_atomic
from attnpaths._src.version import __version__

FORMAT = "attnpaths-record/1"
_HEADER_KEY = "__header__"


class Record(NamedTuple):
    """header: the JSON-able dict given to `save_record` plus format, kind, version; arrays: name -> ndarray."""

    header: dict
    arrays: dict


def _version() -> str:
    return __version__


def jsonable(obj):
    """`obj` with NumPy / JAX scalars and arrays turned into plain Python (lists, floats, ints, bools)."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    if isinstance(obj, np.ndarray) or hasattr(obj, "__array__"):
        return jsonable(np.asarray(obj).tolist())
    return obj


def data_hash(*arrays) -> str:
    """SHA-256 over the shapes and float64 bytes of the arrays (identifies the data a record was made from)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
        h.update(repr(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_record(path, kind: str, header: Mapping, arrays: Mapping) -> None:
    """Write `header` (JSON-able) and `arrays` to `path` (.npz) atomically, tagged with `kind`.

    Raises OSError (from the file system, e.g. a full disk) with the previous file at `path` left intact.
    """
    full = dict(jsonable(header), format=FORMAT, kind=kind, version=_version())
    payload = {}
    for name, value in arrays.items():
        if name == _HEADER_KEY:
            raise ValueError(f"array name {_HEADER_KEY!r} is reserved")
        payload[name] = np.asarray(value)
    payload[_HEADER_KEY] = np.asarray(json.dumps(full, sort_keys=True))
    write_atomic(path, lambda f: np.savez(f, **payload))


def load_record(path, kind: str | None = None) -> Record:
    """Read a record written by `save_record`.

    Raises FileNotFoundError if `path` does not exist, and ValueError naming the file if it is truncated,
    corrupt, not an attnpaths record, or (when `kind` is given) a record of another kind.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no attnpaths record at {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            if _HEADER_KEY not in data.files:
                raise ValueError(f"{path} is not an attnpaths record (no header); delete it or choose another "
                                 "path")
            header = json.loads(str(data[_HEADER_KEY]))
            arrays = {k: data[k] for k in data.files if k != _HEADER_KEY}
    except ValueError as err:
        if str(path) in str(err):
            raise
        raise ValueError(f"{path} is corrupt or truncated ({err}); delete it to start that part over") from None
    except (OSError, EOFError, zipfile.BadZipFile, json.JSONDecodeError, KeyError) as err:
        raise ValueError(f"{path} is corrupt or truncated ({type(err).__name__}: {err}); delete it to start "
                         "that part over") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"{path} is not an attnpaths record of format {FORMAT!r} (got "
                         f"{header.get('format') if isinstance(header, dict) else header!r})")
    if kind is not None and header.get("kind") != kind:
        raise ValueError(f"{path} holds a {header.get('kind')!r} record, not {kind!r}")
    return Record(header, arrays)


def differing_fields(stored: Mapping, wanted: Mapping, ignore=()) -> list[str]:
    """Sorted names of the top-level fields whose values differ between two JSON-able dicts."""
    a, b = jsonable(stored), jsonable(wanted)
    keys = (set(a) | set(b)) - set(ignore)
    return sorted(k for k in keys if a.get(k) != b.get(k))


def describe_differences(stored: Mapping, wanted: Mapping, fields) -> str:
    """'name: stored X, now Y; ...' for the given fields."""
    a, b = jsonable(stored), jsonable(wanted)
    return "; ".join(f"{k}: stored {a.get(k)!r}, now {b.get(k)!r}" for k in fields)


def remove_stale_temporaries(folder) -> None:
    """Delete temporary files a killed writer left behind in `folder` (names `.{name}.XXXX.tmp`)."""
    folder = Path(folder)
    if folder.is_dir():
        for f in folder.glob(".*.tmp"):
            try:
                os.unlink(f)
            except OSError:
                pass
