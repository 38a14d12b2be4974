"""Results files of sampling runs: every finished draw on disk, atomic writes, safe resume.

A sampling run is one record of the package's persistence format (`attnpaths._src.store`, kind
"posterior-draws"): the draws made so far, the last chain state (weights and PRNG keys) and a header (spec, data
hash, seed, sampler settings). It is rewritten whole after new draws, atomically, so a crash leaves either the old
or the new file. A file is only continued or overwritten when its header says that this library made it for the
same run.
"""

from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np

from attnpaths._src.network import Weights
from attnpaths._src.store import data_hash, jsonable, load_record, save_record  # noqa: F401 (data_hash re-exported)

KIND = "posterior-draws"
_VOLATILE = ("n_draws", "draws_done", "version")  # header fields that may differ between a run and its continuation
_RECORD_FIELDS = ("format", "kind")


def make_header(**fields) -> dict:
    """A JSON-able header (plain Python values only)."""
    return jsonable(fields)


def save_run(path, header: dict, arrays: dict) -> None:
    """Write header + arrays to `path` atomically as a "posterior-draws" record."""
    save_record(path, KIND, {k: v for k, v in header.items() if k not in _RECORD_FIELDS}, arrays)


def load_run(path) -> tuple[dict, dict]:
    """(header, arrays) of a sampling results file. ValueError naming the file if it is corrupt or foreign."""
    try:
        header, arrays = load_record(path, kind=KIND)
    except ValueError as err:
        raise ValueError(f"{err}; refusing to use or overwrite it: choose another path or delete it") from None
    return {k: v for k, v in header.items() if k not in _RECORD_FIELDS}, arrays


def open_run(path, header: dict, resume: bool) -> dict | None:
    """Arrays of the run stored at `path` to resume from, or None to start a new run there.

    Raises ValueError if the file exists and is corrupt, foreign, or from another run (its header differs from
    `header` outside n_draws), or if it is this run's file but resume is False.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        return None
    stored, arrays = load_run(path)
    want = {k: v for k, v in header.items() if k not in _VOLATILE}
    got = {k: v for k, v in stored.items() if k not in _VOLATILE}
    if want != got:
        diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
        details = "; ".join(f"{k}: file {got.get(k)!r}, now {want.get(k)!r}" for k in diff)
        raise ValueError(f"{path} holds another run ({details}); refusing to overwrite it: choose another path "
                         "or delete it")
    if not resume:
        raise ValueError(f"{path} already holds {stored.get('draws_done', '?')} draws of this run; pass "
                         "resume=True to continue it, or delete the file to start over")
    missing = [k for k in ("f_test", "U", "seconds") if k not in arrays]
    if missing:
        raise ValueError(f"results file {path} is corrupt: arrays {missing} are missing")
    return arrays


def spec_record(spec) -> dict:
    """The NetworkSpec as a JSON-able dict."""
    return dict(heads=list(spec.heads), widths=list(spec.widths), variances=list(spec.variances),
                temperature=spec.temperature, readout=spec.readout)


def chain_state_arrays(weights: Weights, key, sweeps) -> dict:
    """Arrays of a chain state (weights with a chain axis, (C, 2) keys, sweep count) for `save_run`."""
    out = {"state.V0": weights.V0, "state.a": weights.a, "state.key": key, "state.sweeps": sweeps}
    out.update({f"state.V{l + 1}": V for l, V in enumerate(weights.V)})
    return {k: np.asarray(v) for k, v in out.items()}


def chain_state_from_arrays(n_layers: int, arrays: dict) -> tuple[Weights, jnp.ndarray, jnp.ndarray]:
    """(weights, key, sweeps) back from `chain_state_arrays`."""
    try:
        V = tuple(jnp.asarray(arrays[f"state.V{l + 1}"]) for l in range(n_layers))
        weights = Weights(jnp.asarray(arrays["state.V0"]), V, jnp.asarray(arrays["state.a"]))
        return weights, jnp.asarray(arrays["state.key"]), jnp.asarray(arrays["state.sweeps"])
    except KeyError as err:
        raise ValueError(f"results file is corrupt: chain state {err} is missing") from None


def draw_arrays(draws: list, n_chains: int, n_test: int, n_paths: int) -> dict:
    """Per-draw (f (C, P_test), U (C, H, H)) pairs -> f_test (C, S, P_test), U (C, S, H, H)."""
    if not draws:
        return {"f_test": np.zeros((n_chains, 0, n_test)), "U": np.zeros((n_chains, 0, n_paths, n_paths))}
    return {"f_test": np.stack([d[0] for d in draws], axis=1), "U": np.stack([d[1] for d in draws], axis=1)}
