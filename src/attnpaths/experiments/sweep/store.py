"""The sweep's labelled N-D store: one xarray Dataset in a zarr folder, written cell by cell.

Dimensions are the grid's axes, in the grid's order (plus `path_i`, `path_j` for the H x H order parameters and
`order_entry` for the packed U_1, ..., U_L that warm-start the next width); the path coordinates are the path
names ("1,2": head 1 of layer 1, head 2 of layer 2). Every numeric variable is float64, NaN where a cell has not
produced it; `done` (bool) marks the stored cells and `error` (string) holds a failed cell's error ('' otherwise).
Every variable and coordinate carries CF `long_name` and `units`, so `ds.theory_accuracy.plot()` labels its
axes; the grid, the task's settings and the package version are in the Dataset's attributes. The metadata are
consolidated when the store is created, so plain `xarray.open_zarr` opens it without a warning, mid-sweep too.

Atomicity: the store is created whole in a temporary folder and renamed into place. Every array is chunked one
cell per chunk, and zarr writes each chunk to a temporary file that it renames over the old one, so a killed
writer never leaves a torn chunk. A cell's variables are written first and its `done` flag last: a cell
interrupted in between is not done, and a resumed sweep computes it again and overwrites it. Only the sweep's
driver process writes (the workers return their results to it), so the folder need only be reachable from the
machine that runs `attnpaths sweep`.

    ds = open_sweep("results/sweep")          # xarray.Dataset, lazily loaded
    ds.theory_accuracy.sel(temperature=0.01).mean("train_seed")
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

from attnpaths._src.store import describe_differences, differing_fields, jsonable
from attnpaths.experiments.cf import DIMENSIONLESS, cf, stable_strings
from attnpaths.experiments.sweep.tasks import CellResult

STORE_NAME = "sweep.zarr"
FORMAT = "attnpaths-sweep/1"
ORDER_DIM, PATH_DIMS = "order_entry", ("path_i", "path_j")


class Variable(NamedTuple):
    name: str
    long_name: str  # CF long_name: what xarray writes on a plot's axis
    units: str = DIMENSIONLESS
    extra: str = ""  # "": one number per cell; "path": (path_i, path_j); "order": (order_entry,)


THEORY_VARIABLES = (
    Variable("P", "training examples P of the cell"),
    Variable("theory_accuracy", "test accuracy of the theory's predictor mean (sign)"),
    Variable("theory_mse", "test mean squared error of the theory's predictor mean"),
    Variable("theory_gaussian_accuracy", "mean of Phi(y mean / std) over the test set, theory"),
    Variable("theory_variance", "mean predictive variance over the test set, theory"),
    Variable("gp_accuracy", "test accuracy of the GP limit (U = U_GP)"),
    Variable("gp_mse", "test mean squared error of the GP limit's predictor mean"),
    Variable("gp_gaussian_accuracy", "mean of Phi(y mean / std) over the test set, GP limit"),
    Variable("gp_variance", "mean predictive variance over the test set, GP limit"),
    Variable("action", "action S at the saddle point (normalised by N_max)"),
    Variable("U_a", "scalar readout order parameter U_a at the saddle point"),
    Variable("iterations", "trust-region iterations of the solve"),
    Variable("grad_max", "max |dS/dU| at the saddle point"),
    Variable("min_hessian_eigenvalue", "smallest eigenvalue of the packed Hessian (> 0: a minimum)"),
    Variable("theory_seconds", "wall time of the solve and the two predictions", "s"),
    Variable("U", "path-path order parameter U_1 (NaN-padded to the largest H of the grid)", extra="path"),
    Variable("order_parameters", "U_1, ..., U_L packed (the warm start of the next width)", extra="order"),
)
SAMPLE_VARIABLES = (
    Variable("sample_accuracy", "test accuracy of the sampled predictor mean"),
    Variable("relative_error_mean", "|mean_sampled - mean_theory| / |mean_theory| over the test set"),
    Variable("monte_carlo_floor_mean", "Monte Carlo floor of the predictor mean's error, sqrt(sum se^2) / "
             "|mean_theory|"),
    Variable("relative_error_U", "|U_sampled - U_theory|_F / |U_theory|_F"),
    Variable("monte_carlo_floor_U", "Monte Carlo floor of U's error, |se(U_sampled)|_F / |U_theory|_F"),
    Variable("max_rhat", "worst split R-hat over the test predictions"),
    Variable("min_ess", "smallest effective sample size over the test predictions"),
    Variable("median_iat_sweeps", "median integrated autocorrelation time of the test predictions", "sweeps"),
    Variable("n_draws", "posterior draws (chains x draws per chain)"),
    Variable("sample_seconds", "wall time of the sampling", "s"),
    Variable("U_sampled", "posterior mean of w_hat w_hat^T / N_1 (sampled U_1)", extra="path"),
    Variable("U_sampled_se", "standard error of the sampled U_1", extra="path"),
)
STATUS_VARIABLES = (Variable("seconds", "wall time of the cell", "s"),)
DIMENSION_LABELS = {"path_i": "attention path (row of U)", "path_j": "attention path (column of U)",
                    "order_entry": "entry of the packed U_1, ..., U_L"}


def variables(sampling: bool) -> tuple[Variable, ...]:
    return THEORY_VARIABLES + (SAMPLE_VARIABLES if sampling else ()) + STATUS_VARIABLES


def _xarray():
    try:
        import dask.array  # noqa: F401
        import xarray
        import zarr  # noqa: F401
    except ImportError as err:
        raise ImportError(f"sweeps need the `sweep` extra ({err.name} is missing): pip install 'attnpaths[sweep]'"
                          ) from None
    return xarray


class SweepStore:
    """The zarr store of one sweep (see the module docstring). Use `create_store` or `open_store`."""

    def __init__(self, path: Path):
        import zarr

        self.path = Path(path)
        self.group = zarr.open_group(str(self.path), mode="r+", zarr_format=3)
        self.attrs = dict(self.group.attrs)
        self.axes = list(json.loads(self.attrs["axes"]))
        self.names = set(self.group.array_keys())
        # one handle per variable, opened once: looking an array up in the group reads its metadata every time,
        # which was a third of the client's time per written cell
        self.arrays = {name: self.group[name] for name in self.names}
        self.sizes = {ORDER_DIM: self.arrays["order_parameters"].shape[-1], "path": self.arrays["U"].shape[-1]}

    @property
    def grid(self) -> dict:
        return json.loads(self.attrs["grid"])

    def done(self) -> np.ndarray:
        """(grid shape) bool: cells stored (finished or failed)."""
        return np.asarray(self.arrays["done"][...], dtype=bool)

    def errors(self) -> np.ndarray:
        """(grid shape) str: a failed cell's error, '' elsewhere."""
        return np.asarray(self.arrays["error"][...]).astype(object)

    def order_parameters(self, index: tuple) -> np.ndarray | None:
        """The packed order parameters stored for a cell (the warm start of the next width), None if absent."""
        flat = np.asarray(self.arrays["order_parameters"][index])
        return None if np.isnan(flat[0]) else flat

    def write(self, index: tuple, result: CellResult) -> None:
        """Store one cell: its variables, then (last) its done flag (see the module docstring)."""
        values = dict(result.values, seconds=result.seconds)
        unknown = sorted(set(values) - self.names)
        if unknown:
            raise ValueError(f"the cell returned variables the store does not hold: {unknown}")
        for name, value in values.items():
            array = self.arrays[name]
            value = np.asarray(value, dtype=np.float64)
            if value.ndim:
                padded = np.full(array.shape[len(index):], np.nan)
                padded[tuple(slice(0, n) for n in value.shape)] = value
                value = padded
            array[index] = value
        self.arrays["error"][index] = result.error
        self.arrays["done"][index] = True

    def clear(self, index: tuple) -> None:
        """Mark a cell as not done (a failed cell that is computed again)."""
        self.arrays["done"][index] = False
        self.arrays["error"][index] = ""


def create_store(folder, axes: dict, grid_identity: dict, path_names, order_size: int, sampling: bool,
                 attrs: dict, axis_labels: dict | None = None) -> SweepStore:
    """Create FOLDER/sweep.zarr for a grid with `axes` (name -> values), whole, then rename it into place.

    path_names: the labels of the path coordinates path_i, path_j (`spec.path_labels`; their number is H).
    axis_labels: axis name -> (long_name, units) of its coordinate (default: the axis name, dimensionless).
    Every variable and coordinate gets CF `long_name` and `units`; the metadata are consolidated once here
    (the arrays never change shape or attributes afterwards, only their chunks are written), so plain
    `xarray.open_zarr` opens the store cleanly at any moment, an interrupted sweep's included.
    """
    xr = _xarray()
    import dask.array as da

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shape = tuple(len(v) for v in axes.values())
    dims = tuple(axes)
    n_paths = len(path_names)
    extra = {"": ((), ()), "path": (PATH_DIMS, (n_paths, n_paths)), "order": ((ORDER_DIM,), (order_size,))}
    data = {}
    for var in variables(sampling):
        edims, eshape = extra[var.extra]
        lazy = da.full(shape + eshape, np.nan, chunks=(1,) * len(shape) + eshape)
        data[var.name] = (dims + edims, lazy, cf(var.long_name, var.units))
    data["done"] = (dims, da.zeros(shape, dtype=bool, chunks=1), cf("cell stored (finished or failed)"))
    blank = np.full(shape, "", dtype=np.dtypes.StringDType())
    data["error"] = (dims, da.from_array(blank, chunks=1), cf("error of a failed cell ('' if none)"))
    labels = axis_labels or {}
    coords = {name: (name, stable_strings(values), cf(*labels.get(name, (name, DIMENSIONLESS))))
              for name, values in axes.items()}
    names = stable_strings(list(path_names))
    coords.update({dim: (dim, names, cf(DIMENSION_LABELS[dim])) for dim in PATH_DIMS})
    coords[ORDER_DIM] = (ORDER_DIM, np.arange(order_size), cf(DIMENSION_LABELS[ORDER_DIM]))
    meta = {"format": FORMAT, "axes": json.dumps(list(axes)), "grid": json.dumps(jsonable(grid_identity)),
            **{k: json.dumps(jsonable(v)) if not isinstance(v, str) else v for k, v in attrs.items()}}
    ds = xr.Dataset(data, coords=coords, attrs=meta)
    tmp = Path(tempfile.mkdtemp(prefix=f".{STORE_NAME}.", dir=folder))
    try:
        with warnings.catch_warnings():
            # zarr notes that consolidated metadata are not part of the zarr 3 specification; xarray reads them
            # and warns when they are missing, and other readers ignore them
            warnings.filterwarnings("ignore", "Consolidated metadata", UserWarning)
            ds.to_zarr(str(tmp / STORE_NAME), mode="w", compute=False, consolidated=True, zarr_format=3)
        os.replace(tmp / STORE_NAME, folder / STORE_NAME)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return SweepStore(folder / STORE_NAME)


def consolidated(path: Path) -> bool:
    """Whether the zarr store at `path` holds consolidated metadata."""
    return json.loads((Path(path) / "zarr.json").read_text()).get("consolidated_metadata") is not None


def consolidate(path: Path) -> None:
    """Consolidate the metadata of a store written before they were (a store of an older version)."""
    import zarr

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Consolidated metadata", UserWarning)
        zarr.consolidate_metadata(str(path), zarr_format=3)


def open_store(folder, grid_identity: dict | None = None) -> SweepStore:
    """The store in FOLDER; with `grid_identity`, ValueError naming what differs if it was made for another grid."""
    _xarray()
    path = Path(folder) / STORE_NAME
    if not (path / "zarr.json").is_file():
        raise FileNotFoundError(f"no sweep store at {path}")
    remove_partial_chunks(path)
    if not consolidated(path):
        consolidate(path)
    store = SweepStore(path)
    if store.attrs.get("format") != FORMAT:
        raise ValueError(f"{path} is not an attnpaths sweep store of format {FORMAT!r}")
    if grid_identity is not None:
        stored, wanted = store.grid, jsonable(grid_identity)
        diff = differing_fields(stored, wanted)
        if diff:
            raise ValueError(f"cannot resume the sweep in {folder}: it was made for another grid "
                             f"({describe_differences(stored, wanted, diff)}); use another --out")
    return store


def remove_partial_chunks(path: Path) -> None:
    """Delete the temporary chunk files a killed writer left (zarr names them *.partial)."""
    for p in Path(path).rglob("*.partial"):
        p.unlink(missing_ok=True)


def open_sweep(folder):
    """The results of the sweep in FOLDER as an `xarray.Dataset` (lazily loaded; `.load()` reads it all).

    Dimensions: the grid's axes (plus path_i, path_j, order_entry); see `THEORY_VARIABLES`, `SAMPLE_VARIABLES`.
    """
    xr = _xarray()
    path = Path(folder)
    if path.name != STORE_NAME:
        path = path / STORE_NAME
    if not (path / "zarr.json").is_file():
        raise FileNotFoundError(f"no sweep store at {path}")
    return xr.open_zarr(str(path), consolidated=consolidated(path))
