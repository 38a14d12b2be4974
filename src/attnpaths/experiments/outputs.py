"""What every command does with its output folder before it starts, and what it says when it is interrupted.

* `claim_output`: a folder that holds a run (finished or partial) is continued (--resume), moved aside to the
  sibling OUT.old-YYYYMMDD-HHMMSS (--overwrite; no command deletes a run), or refused before anything on disk
  changes, naming the folder and both ways on.
* `describe_stored`: what an interrupted command leaves in its folder, for its one closing line.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from attnpaths._src.store import load_record
from attnpaths.experiments.runner import RUN_RECORD, OutputInUse, OutputLock

# ----------------------------------------------------------------------------------------------------------------

# What a run (finished or partial) of any command leaves in its folder; anything else in OUT is not a run.
RUN_MARKERS = ("run.npz", "stages", "results.json", "settings.toml", "samples", "sweep.zarr", "grid.toml")


def holds_run(out) -> bool:
    """Whether folder `out` holds a finished or partial run of some command (one of `RUN_MARKERS`)."""
    out = Path(out)
    return out.is_dir() and any((out / m).exists() for m in RUN_MARKERS)


def claim_output(out, resume: bool, overwrite: bool, log: Callable[[str], None] = print) -> None:
    """The policy of every command for its output folder: a folder that holds a run is continued (`resume`), moved
    aside to the sibling OUT.old-YYYYMMDD-HHMMSS (`overwrite`; nothing is deleted), or refused with an
    `OutputInUse` naming the folder and both ways on, before anything on disk changes."""
    out = Path(out)
    if resume or not holds_run(out):
        return
    if not overwrite:
        raise OutputInUse(f"{out} already holds a run; continue it with --resume, or start over with --overwrite "
                          "(which moves the old run aside to a sibling folder, deleting nothing), or choose "
                          "another --out")
    # The folder is moved while this process holds its lock: a run that starts meanwhile (another --overwrite,
    # say) is refused by the lock instead of being moved aside with the old run, and two --overwrite runs never
    # both move (or one of them move the other's new run).
    lock = OutputLock(out).acquire()
    try:
        if not holds_run(out):  # another --overwrite moved it aside before this one took the lock
            return
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = out.with_name(f"{out.name}.old-{stamp}")
        n = 1
        while aside.exists():
            n += 1
            aside = out.with_name(f"{out.name}.old-{stamp}-{n}")
        os.rename(out, aside)
        lock.path = aside / lock.path.name  # the lock file moved with the folder: released (removed) there
    finally:
        lock.release()
    log(f"moved the previous run in {out} aside to {aside} (delete it yourself once you no longer need it)")


def _partial_text(path: Path) -> str:
    try:
        header = load_record(path).header
    except (OSError, ValueError):
        return path.name
    name = path.name.removesuffix(".partial.npz")
    if "step" in header:
        return f"{name} up to step {header['step']}"
    if "rows" in header:
        return f"{name} with {len(header['rows'])} rows"
    return name


def describe_stored(out) -> tuple[str, str]:
    """(what is stored, what is not) in folder `out`, for the one line an interrupted command ends with."""
    out = Path(out)
    stored, kept = [], []
    stages = out / "stages"
    if stages.is_dir():
        done = sorted(f.name.removesuffix(".npz") for f in stages.glob("*.npz") if not f.name.endswith(".partial.npz"))
        stored += [f"stages {', '.join(done)}"] if done else []
        kept += [_partial_text(f) for f in sorted(stages.glob("*.partial.npz"))]
    if (out / "sweep.zarr" / "done").is_dir():
        try:
            import zarr

            done = np.asarray(zarr.open_array(str(out / "sweep.zarr" / "done"), mode="r")[...], dtype=bool)
            stored.append(f"{int(done.sum())} of {done.size} cells")
        except Exception:  # noqa: BLE001 (a description only; the store is checked when resumed)
            stored.append("a partial sweep store")
    draws = sorted((out / "samples").glob("*.npz")) if (out / "samples").is_dir() else []
    if draws:
        kept.append(f"{len(draws)} posterior-draw file(s)")
    subruns = sorted(p.name for p in out.iterdir() if p.is_dir() and (p / RUN_RECORD).exists()) \
        if out.is_dir() else []
    if subruns:
        stored.append(f"runs {', '.join(subruns)}")
    what = "; ".join(stored) or "nothing finished"
    if kept:
        what += f" (partial progress kept: {', '.join(kept)})"
    return what, "not stored: the rest of the run (results.json and the figures come at its end)"
