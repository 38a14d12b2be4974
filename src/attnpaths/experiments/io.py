"""Results files (results.json, CSV tables, netCDF exports): written atomically so an interrupted job never leaves
a half-written file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from attnpaths._src.atomic import _create_temporary, write_atomic
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


def to_netcdf(ds, path, engine: str | None = None) -> Path:
    """Write a results Dataset (or the sweep store in a folder) as one netCDF file, atomically.

    For users without zarr: `xarray.open_dataset(path)` reads it back with the same CF attributes.

    Args:
      ds: an `xarray.Dataset` (e.g. `open_sweep(folder)`), or a folder holding a sweep store.
      path: the .nc file to write.
      engine: xarray's netCDF engine ("netcdf4", "h5netcdf", "scipy"); None: the first one installed.
    Returns:
      the path written.
    """
    import xarray as xr

    if not isinstance(ds, xr.Dataset):
        from attnpaths.experiments.sweep.store import open_sweep

        ds = open_sweep(ds)
    ds = ds.load()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(path)  # mode 0o666 & ~umask, as every file a run writes (mkstemp's is 0600)
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine=engine)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
