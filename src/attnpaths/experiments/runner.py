"""The resumable stage runner shared by every experiment, and the lock that keeps one run per output folder.

An experiment is a plain function that calls `runner.stage(name, fn, *inputs)` for each of its stages. A stage
is a function from typed inputs to a typed output (a frozen dataclass of arrays and JSON-able values); the runner
saves the output as one record of the package's persistence format (`attnpaths._src.store`, kind
"stage:<name>", written atomically) in OUT/stages/<name>.npz and returns it. With `resume=True` a stage whose
record exists is loaded instead of run.

    with Runner(out, "markov", settings, resume=args.resume) as run:
        data = run.stage("data", build_data, settings)
        theory = run.stage("theory", solve_theory, settings, data)

Rules:
* A new run (resume=False) starts over: the stage records of a previous run in OUT are removed. Posterior-draw
  files are never removed silently (the sampler refuses to overwrite them without resume).
* A resumed run must have the settings of the run it continues: OUT/run.npz holds them, and any field that
  differs is named in the error (fields declared with identity=False, such as where the data lives, may change).
* A long stage keeps its own progress in `run.partial(name)` (e.g. a training checkpoint); the runner removes it
  once the stage's output is saved.
* OUT holds a lock file while a run writes to it: a second run into the same OUT is refused, naming the process
  that holds it. A lock left by a process that no longer runs (killed) is taken over.
* Every command first calls `claim_output(out, resume, overwrite)`: a folder that holds a run (finished or
  partial) is refused unless it is resumed, or moved aside to OUT.old-YYYYMMDD-HHMMSS with --overwrite; no
  command deletes a run. (The Python API's `Runner(resume=False)` starts over, as above.)
* A runner made with `only=(names)` runs those stages and loads every other one (refusing a run where one is
  not done): `attnpaths sample` adds its samples stage to a finished run this way, and results.json is rebuilt
  from the stage records, never read back.
* A stage's time is recorded in the active `timing.Timeline` (the command's one timing line).
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import shutil
import time
import types
import typing
from pathlib import Path
from typing import Any, Callable

import numpy as np

from attnpaths._src.atomic import write_atomic
from attnpaths.experiments.timing import note_loaded, stage_timer
from attnpaths._src.store import (describe_differences, differing_fields, load_record, remove_stale_temporaries,
                                  save_record)

LOCK_NAME = ".attnpaths.lock"
RUN_RECORD = "run.npz"


class OutputInUse(RuntimeError):
    """Another live process holds the output folder's lock, or the folder holds a run and neither resume nor
    overwrite was asked for."""


# ----------------------------------------------------------------------------------------------------------------
# the lock
# ----------------------------------------------------------------------------------------------------------------

def _process_start(pid: int) -> str | None:
    """Start time of a process in clock ticks since boot (Linux /proc), None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields[19]  # field 3 = state; field 22 = starttime


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if Path("/proc").is_dir():
        now = _process_start(pid)
        if now is None:  # a zombie, or gone between the two calls
            return False
        return start is None or now == start  # a different start time: the pid was reused
    return True


class OutputLock:
    """An exclusive lock on an output folder: the file OUT/.attnpaths.lock holding the owner's pid."""

    def __init__(self, folder):
        self.path = Path(folder) / LOCK_NAME
        self.held = False

    def _owner(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def acquire(self) -> "OutputLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "start": _process_start(os.getpid()),
              "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                owner = self._owner()
                if owner is None:
                    # unreadable: a writer killed between creating and filling it, or one filling it right now
                    if time.time() - self.path.stat().st_mtime < 5:
                        time.sleep(1.0)
                        continue
                elif owner.get("host") != me["host"] or _alive(int(owner["pid"]), owner.get("start")):
                    raise OutputInUse(
                        f"{self.path.parent} is in use by another attnpaths run (pid {owner.get('pid')} on "
                        f"{owner.get('host')}, since {owner.get('since')}); wait for it to finish or choose "
                        f"another --out (if that process is gone, delete {self.path})") from None
                try:  # stale: its process is gone
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return self
        raise OutputInUse(f"could not take the lock {self.path}; delete it if no attnpaths run uses this folder")

    def release(self) -> None:
        if self.held:
            owner = self._owner()
            if owner is not None and owner.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


# ----------------------------------------------------------------------------------------------------------------
# typed outputs <-> records
# ----------------------------------------------------------------------------------------------------------------

def _is_array_type(tp) -> bool:
    return tp is np.ndarray or (typing.get_origin(tp) in (typing.Union, types.UnionType)
                                and np.ndarray in typing.get_args(tp))


def _is_array_tuple_type(tp) -> bool:
    return typing.get_origin(tp) is tuple and typing.get_args(tp)[:1] == (np.ndarray,)


def _remove_partial(stages: Path, name: str) -> None:
    """Remove stage `name`'s partial progress (`name` may be the pattern "*"): <name>.partial.npz and whatever
    the stage kept beside it as <name>.partial.* (files or folders)."""
    for p in stages.glob(f"{name}.partial.*") if stages.is_dir() else ():
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)


def output_to_record(output) -> tuple[dict, dict]:
    """A stage output (frozen dataclass) -> (JSON header fields, arrays). Fields annotated np.ndarray go to the
    arrays, tuple[np.ndarray, ...] fields to arrays name.0, name.1, ...; every other field must be JSON-able."""
    if not dataclasses.is_dataclass(output):
        raise TypeError(f"a stage must return a dataclass; got {type(output).__name__}")
    hints = typing.get_type_hints(type(output))
    header, arrays = {}, {}
    for f in dataclasses.fields(output):
        value, tp = getattr(output, f.name), hints[f.name]
        if _is_array_tuple_type(tp):
            header[f.name] = {"__arrays__": len(value)}
            arrays.update({f"{f.name}.{i}": np.asarray(v) for i, v in enumerate(value)})
        elif _is_array_type(tp) and value is not None:
            arrays[f.name] = np.asarray(value)
        else:
            header[f.name] = value
    return header, arrays


def output_from_record(cls, header: dict, arrays: dict):
    """Inverse of `output_to_record`. A JSON field with a default that the record lacks (the record was written
    before the field was added) gets its default."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if _is_array_tuple_type(tp):
            values[f.name] = tuple(arrays[f"{f.name}.{i}"] for i in range(header[f.name]["__arrays__"]))
        elif _is_array_type(tp):
            values[f.name] = arrays.get(f.name)
        elif f.name in header:
            values[f.name] = header[f.name]
        elif f.default is not dataclasses.MISSING:
            values[f.name] = f.default
        else:
            raise ValueError(f"the stored record lacks field {f.name!r} of {cls.__name__}; run that stage again "
                             "(without --resume)")
    return cls(**values)


def load_run_header(out) -> dict:
    """The header of OUT/run.npz (experiment, settings, all_settings); ValueError naming the file if it lacks one."""
    path = Path(out) / RUN_RECORD
    header = load_record(path, kind="run").header
    missing = [k for k in ("experiment", "settings", "all_settings") if k not in header]
    if missing:
        raise ValueError(f"{path} is not a complete run record (it lacks {', '.join(missing)}); run the experiment "
                         "again into this folder, without --resume")
    return header


# ----------------------------------------------------------------------------------------------------------------
# the runner
# ----------------------------------------------------------------------------------------------------------------

class Runner:
    """Runs the stages of one experiment into one output folder (see the module docstring).

    Args:
      out: the output folder.
      experiment: the experiment's name (stored; a folder of another experiment is never resumed).
      settings: the experiment's `Settings`.
      resume: continue the run in `out` (same settings) instead of starting over.
      log: where progress lines go.
      only: the names of the stages this runner may run; every other stage must be done and is loaded (how
        `attnpaths sample` adds its stage to a finished run). None: any stage.
    """

    def __init__(self, out, experiment: str, settings, resume: bool = False, log: Callable[[str], None] = print,
                 only: tuple[str, ...] | None = None):
        self.out = Path(out)
        self.stages_dir = self.out / "stages"
        self.experiment = experiment
        self.settings = settings
        self.resume = resume
        self.log = log
        self.only = only
        self.lock = OutputLock(self.out)
        self.timings: dict[str, float] = {}
        self.skipped: list[str] = []

    # -- setup ----------------------------------------------------------------------------------------------
    def __enter__(self) -> "Runner":
        self.lock.acquire()
        try:
            self._prepare()
        except BaseException:
            self.lock.release()
            raise
        return self

    def __exit__(self, *exc):
        self.lock.release()

    def _prepare(self) -> None:
        run_path = self.out / RUN_RECORD
        remove_stale_temporaries(self.out)
        remove_stale_temporaries(self.stages_dir)
        if self.resume and run_path.exists():
            header = load_run_header(self.out)
            if header.get("experiment") != self.experiment:
                raise ValueError(f"{self.out} holds a {header.get('experiment')!r} run, not {self.experiment!r}; "
                                 "choose another --out")
            stored = with_new_defaults(header["settings"], self.settings)
            check_same_settings(self.out, stored, self.settings.identity())
        elif not self.resume:
            for f in self.stages_dir.glob("*.npz") if self.stages_dir.is_dir() else ():
                f.unlink()
            _remove_partial(self.stages_dir, "*")
        record = {"experiment": self.experiment, "settings": self.settings.identity(),
                  "all_settings": self.settings.to_dict()}
        if not (self.resume and run_path.exists() and _same_record(run_path, record)):
            save_record(run_path, "run", record, {})
        text = self.settings.to_toml().encode()
        toml_path = self.out / "settings.toml"
        if not (toml_path.is_file() and toml_path.read_bytes() == text):  # a resumed run leaves its files alone
            write_atomic(toml_path, lambda f: f.write(text))

    # -- stages ---------------------------------------------------------------------------------------------
    def path(self, name: str) -> Path:
        return self.stages_dir / f"{name}.npz"

    def partial(self, name: str) -> Path:
        """Where a long stage keeps its own progress (removed when the stage is done, with anything beside it
        named <name>.partial.*, e.g. a training's folder of kept snapshots)."""
        return self.stages_dir / f"{name}.partial.npz"

    def done(self, name: str) -> bool:
        return self.path(name).exists()

    def load(self, name: str, cls):
        """The saved output of stage `name` as `cls` (ValueError naming the file if it is damaged)."""
        rec = load_record(self.path(name), kind=f"stage:{name}")
        self.timings[name] = float(rec.header.get("seconds", 0.0))
        return output_from_record(cls, rec.header["output"], rec.arrays)

    def stage(self, name: str, fn: Callable[..., Any], *inputs, output: type | None = None, rerun: bool = False,
              **kwargs):
        """Run `fn(*inputs, **kwargs)` as stage `name` and save its output, or load the saved output when the
        run is resumed and the stage is done. `output`: the output's class (default: fn's return annotation);
        rerun: run the stage even when it is done (e.g. more posterior draws)."""
        cls = output or typing.get_type_hints(fn)["return"]
        if self.resume and self.done(name) and not rerun:
            result = self.load(name, cls)
            self.skipped.append(name)
            note_loaded(name)
            self.log(f"{name}: done before, loaded from {self.path(name)}")
            return result
        if self.only is not None and name not in self.only:
            raise ValueError(f"{self.out} holds an unfinished {self.experiment} run (its stage {name!r} is not done);"
                             f" finish it first with `attnpaths {self.experiment} --resume --out {self.out}` and "
                             "the options it was started with")
        t0 = time.perf_counter()
        with stage_timer(name):
            result = fn(*inputs, **kwargs)
        seconds = time.perf_counter() - t0
        if not isinstance(result, cls):
            raise TypeError(f"stage {name} returned {type(result).__name__}, expected {cls.__name__}")
        fields, arrays = output_to_record(result)
        save_record(self.path(name), f"stage:{name}", {"output": fields, "seconds": seconds,
                                                        "settings": self.settings.identity()}, arrays)
        _remove_partial(self.stages_dir, name)
        self.timings[name] = seconds
        return result


def _same_record(path: Path, record: dict) -> bool:
    header = load_record(path, kind="run").header
    return not differing_fields({k: header.get(k) for k in record}, record)


def with_new_defaults(stored: dict, settings) -> dict:
    """The stored settings of a run, with every field added to the settings class since the run was made taken at
    its default (what the run used): a run made by an earlier version resumes when the new fields keep their
    defaults, and is refused, naming them, when they do not."""
    fields = {f.name: f for f in dataclasses.fields(settings)} if dataclasses.is_dataclass(settings) else {}
    added = {}
    for name in settings.identity():
        f = fields.get(name)
        if name in stored or f is None:
            continue
        if f.default is not dataclasses.MISSING:
            added[name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            added[name] = f.default_factory()
    return {**added, **stored}


def check_same_settings(where, stored: dict, wanted: dict) -> None:
    """ValueError naming the fields that differ between the stored and the wanted settings."""
    diff = differing_fields(stored, wanted)
    if diff:
        raise ValueError(f"cannot resume {where}: it was made with other settings "
                         f"({describe_differences(stored, wanted, diff)}); use another --out, or drop --resume to "
                         "start over")
