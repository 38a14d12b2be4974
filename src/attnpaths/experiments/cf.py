"""Self-describing results: CF attributes on every variable and coordinate (the netCDF export is
`attnpaths.experiments.io.to_netcdf`).

Every store and table the commands write carries `long_name` and `units` (CF conventions; "1" for a
dimensionless quantity) on each variable and coordinate, so that plain xarray labels a plot with no extra code:

    ds = open_sweep("results/sweep")
    ds.theory_accuracy.sel(train_seed=1).plot(x="temperature", hue="N", xscale="log")   # labelled axes

Strings are stored as NumPy's variable-length `StringDType`: zarr format 3 has a specification for it, while
fixed-width unicode (`<U6`) makes zarr warn that its representation may change.
"""

from __future__ import annotations

import numpy as np

DIMENSIONLESS = "1"


def cf(long_name: str, units: str = DIMENSIONLESS) -> dict:
    """The CF attributes of a variable: {"long_name": ..., "units": ...}."""
    if not long_name or not units:
        raise ValueError(f"a CF label needs a non-empty long_name and units; got {long_name!r}, {units!r}")
    return {"long_name": long_name, "units": units}


def unlabelled(ds) -> list[str]:
    """Names of the variables and coordinates of `ds` that lack `long_name` or `units` (empty: all labelled)."""
    return sorted(str(name) for name, v in {**ds.coords, **ds.data_vars}.items()
                  if not v.attrs.get("long_name") or not v.attrs.get("units"))


def stable_strings(values) -> np.ndarray:
    """`values` as a NumPy array, strings as variable-length StringDType (see the module docstring)."""
    arr = np.asarray(values)
    if arr.dtype.kind in "UO" and all(isinstance(v, str) for v in arr.ravel()):
        return arr.astype(np.dtypes.StringDType())
    return arr


def label(ds, labels: dict):
    """A copy of Dataset `ds` with CF attributes set from `labels` (name -> (long_name, units)) and its string
    variables and coordinates stored as StringDType; ValueError naming what is still unlabelled."""
    ds = ds.copy()
    for name, (long_name, units) in labels.items():
        if name in ds.variables:
            ds[name].attrs.update(cf(long_name, units))
    for name in list(ds.variables):
        if ds[name].dtype.kind in "UO":
            ds[name] = (ds[name].dims, stable_strings(ds[name].values), ds[name].attrs)
    missing = unlabelled(ds)
    if missing:
        raise ValueError(f"labels must give (long_name, units) of every variable and coordinate; missing {missing}")
    return ds
