"""Results files of sampling runs: draws streamed to disk in parts, atomic writes, exact resume.

A run stored at `path` is records of the package's one persistence format (`attnpaths._src.store`):

  path                      kind "posterior-draws": header (spec, data hash, seed, sampler settings), the last
                            chain state (every leaf of the sampler's state), the size of every part, warm-up
                            steps done, seconds spent;
  {stem}.parts/000000.npz   kind "posterior-draws-part": the draws (f_test, U) made between two saves.

A save appends one part (only the new draws: the history is never rewritten) and then replaces the main
record; both writes are atomic. The main record is the commit point: a part it does not count (a kill between
the two writes) is ignored and rewritten by the resumed run, so a killed run keeps exactly the draws of its last
save and resumes to the same numbers. A file is only continued or overwritten when its header says that this
library made it for the same run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from attnpaths._src.store import (  # noqa: F401 (data_hash re-exported)
    data_hash,
    jsonable,
    load_record,
    remove_stale_temporaries,
    save_record,
)

KIND = "posterior-draws"
PART_KIND = "posterior-draws-part"
LAYOUT = "parts/1"
_VOLATILE = ("n_draws", "draws_done", "version", "format", "kind")  # may differ between a run and its resume


class StoredRun(NamedTuple):
    """What a results file holds: the chain state's leaves, warm-up steps done, seconds, draws so far.

    state: list of arrays (the sampler state's leaves in `jax.tree_util` order).
    f_test: (C, S, P_test); U: (C, S, H, H).
    """

    state: list
    warmup_done: int
    seconds: float
    f_test: np.ndarray
    U: np.ndarray


def parts_folder(path) -> Path:
    """The folder of a run's parts: `{stem}.parts` beside `path`."""
    path = Path(path)
    return path.with_name(path.stem + ".parts")


def spec_record(spec) -> dict:
    """The NetworkSpec as a JSON-able dict."""
    return dict(heads=list(spec.heads), widths=list(spec.widths), variances=list(spec.variances),
                temperature=spec.temperature, readout=spec.readout)


def _run_id(header: dict) -> str:
    fixed = {k: v for k, v in jsonable(header).items() if k not in _VOLATILE}
    return hashlib.sha256(json.dumps(fixed, sort_keys=True).encode()).hexdigest()[:16]


def _part_path(folder: Path, index: int) -> Path:
    return folder / f"{index:06d}.npz"


class DrawStore:
    """Writer of one run's results file (see the module docstring)."""

    def __init__(self, path, header: dict):
        self.path = Path(path)
        self.folder = parts_folder(self.path)
        self.header = dict(jsonable(header), layout=LAYOUT)
        self.run = _run_id(self.header)
        self.part_sizes: list[int] = []

    @classmethod
    def open(cls, path, header: dict, resume: bool) -> tuple["DrawStore", StoredRun | None]:
        """The store at `path` and the run to continue (None: a new run starts there).

        Raises ValueError if a file exists at `path` and is corrupt, foreign, from another run (its header
        differs outside n_draws), or is this run's file but resume is False.
        """
        self = cls(path, header)
        remove_stale_temporaries(self.path.parent)
        remove_stale_temporaries(self.folder)
        if not self.path.exists():
            if self.folder.is_dir():  # parts a deleted main record no longer counts
                for f in self.folder.glob("[0-9]*.npz"):
                    f.unlink()
            return self, None
        stored, arrays = _load_main(self.path)
        diff = sorted(k for k in set(stored) | set(self.header)
                      if k not in _VOLATILE and stored.get(k) != self.header.get(k))
        if diff:
            details = "; ".join(f"{k}: file {stored.get(k)!r}, now {self.header.get(k)!r}" for k in diff)
            raise ValueError(f"{self.path} holds another run ({details}); refusing to overwrite it: choose "
                             "another path or delete it")
        if not resume:
            raise ValueError(f"{self.path} already holds {stored.get('draws_done', '?')} draws of this run; pass "
                             "resume=True to continue it, or delete the file to start over")
        self.part_sizes = [int(n) for n in arrays["part_sizes"]]
        f_test, U = self._read_parts()
        n_state = len([k for k in arrays if k.startswith("state.")])
        state = [arrays[f"state.{i}"] for i in range(n_state)]
        return self, StoredRun(state, int(arrays["warmup_done"]), float(arrays["seconds"]), f_test, U)

    def _read_parts(self) -> tuple[np.ndarray, np.ndarray]:
        fs, Us, first = [], [], 0
        for index, size in enumerate(self.part_sizes):
            part = _part_path(self.folder, index)
            try:
                header, arrays = load_record(part, kind=PART_KIND)
            except FileNotFoundError:
                raise ValueError(f"results of {self.path} are incomplete: part {part} is missing; delete "
                                 f"{self.path} and {self.folder} to start over") from None
            if header.get("run") != self.run or header.get("first") != first or arrays["f_test"].shape[1] != size:
                raise ValueError(f"{part} does not belong to the run in {self.path} (run/first/size differ); "
                                 f"delete {self.path} and {self.folder} to start over")
            fs.append(arrays["f_test"])
            Us.append(arrays["U"])
            first += size
        if not fs:
            return np.zeros((0, 0, 0)), np.zeros((0, 0, 0, 0))
        return np.concatenate(fs, axis=1), np.concatenate(Us, axis=1)

    def save(self, state_leaves: list, warmup_done: int, seconds: float, n_draws: int,
             new_f: np.ndarray | None = None, new_U: np.ndarray | None = None) -> None:
        """Append the draws made since the last save (f (C, n, P_test), U (C, n, H, H)) as one part, then
        commit the chain state and counters in the main record."""
        if new_f is not None and new_f.shape[1] > 0:
            first = sum(self.part_sizes)
            save_record(_part_path(self.folder, len(self.part_sizes)), PART_KIND,
                        {"run": self.run, "first": first}, {"f_test": new_f, "U": new_U})
            self.part_sizes.append(int(new_f.shape[1]))
        arrays = {f"state.{i}": np.asarray(leaf) for i, leaf in enumerate(state_leaves)}
        arrays.update(part_sizes=np.asarray(self.part_sizes, dtype=np.int64),
                      warmup_done=np.asarray(warmup_done, dtype=np.int64), seconds=np.asarray(seconds))
        header = dict(self.header, n_draws=n_draws, draws_done=sum(self.part_sizes))
        save_record(self.path, KIND, header, arrays)


def _load_main(path: Path) -> tuple[dict, dict]:
    try:
        header, arrays = load_record(path, kind=KIND)
    except ValueError as err:
        raise ValueError(f"{err}; refusing to use or overwrite it: choose another path or delete it") from None
    missing = [k for k in ("part_sizes", "warmup_done", "seconds") if k not in arrays]
    if header.get("layout") != LAYOUT:
        raise ValueError(f"{path} was written by an older attnpaths (layout {header.get('layout')!r}, now "
                         f"{LAYOUT!r}); it cannot be resumed: choose another path or delete it")
    if missing:
        raise ValueError(f"results file {path} is corrupt: arrays {missing} are missing")
    return {k: v for k, v in header.items() if k not in ("format", "kind", "version")}, arrays


def load_draws(path):
    """The draws stored at `path` by a sampling run (finished or not) as `PosteriorDraws`, without sampling."""
    from attnpaths._src.sampling.draws import PosteriorDraws

    header, arrays = _load_main(Path(path))
    store = DrawStore(path, {k: v for k, v in header.items() if k != "layout"})
    store.part_sizes = [int(n) for n in arrays["part_sizes"]]
    f_test, U = store._read_parts()
    settings = header.get("settings", {})
    return PosteriorDraws(f_test, U, int(settings.get("thin", 1)), float(arrays["seconds"]),
                          header.get("draws_done", 0) >= header.get("n_draws", 0))


def state_leaves(state) -> list:
    """A sampler state's leaves as NumPy arrays (for `DrawStore.save`)."""
    import jax

    return [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(state)]


def state_from_leaves(template, leaves: list, path=None):
    """The state with `template`'s structure and the stored leaves; ValueError if they do not fit."""
    import jax

    t_leaves, treedef = jax.tree_util.tree_flatten(template)
    where = f" in {path}" if path is not None else ""
    if len(t_leaves) != len(leaves) or any(np.shape(a) != np.shape(b) for a, b in zip(t_leaves, leaves)):
        raise ValueError(f"the chain state{where} does not fit this sampler (stored {len(leaves)} arrays, "
                         f"sampler has {len(t_leaves)}); delete the file to start over")
    return jax.tree_util.tree_unflatten(treedef, [np.asarray(x, dtype=np.asarray(t).dtype)
                                                   for x, t in zip(leaves, t_leaves)])
