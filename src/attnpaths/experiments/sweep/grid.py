"""A sweep's grid: a task, its fixed settings and the axes, read from a TOML file and checked before anything runs.

    task = "markov"                 # a registered sweep task: markov, features, oneshot, or a user's
    preset = "4paths"               # optional: a preset of the task's settings

    [settings]                      # fixed settings of every cell (any field of the task's settings)
    n_test = 500

    [axes]                          # one axis per key; the cells are all combinations, in this order
    N = [10, 30, 100]               # the width axis (warm starts run along it, largest first)
    temperature = [0.01, 0.1, 1, 10]
    train_seed = [1, 2, 3]

    [sampling]                      # optional: also sample the real network's posterior in every cell
    n_samples = 200

Axis names are settings fields of the task, or `N` (the width: the task's width field, one width per cell) or
`alpha` (the load alpha = P / N: the task's number of examples is set to alpha N, rounded as the task needs).
Without an `N` axis the widths of the settings form it. Every axis value is checked against its field at once
(a bad value names the axis); a cell whose combination is invalid (say alpha N < 2 examples) is stored as failed.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterator, NamedTuple

from attnpaths.experiments.sampling import SampleSettings
from attnpaths.experiments.settings import Settings, read_toml, setting
from attnpaths.experiments.settings import _toml_value as toml_value
from attnpaths.experiments.sweep.tasks import SWEEP_TASKS, SweepTask

WIDTH_AXIS, LOAD_AXIS = "N", "alpha"
TABLES = ("task", "preset", "settings", "axes", "sampling")


@dataclass(frozen=True)
class SweepSampleSettings(SampleSettings):
    """The [sampling] table of a grid: posterior draws in every cell (or only at `widths`)."""

    time_budget: float | None = setting(None, "seconds of sampling per cell; the draws made by then are kept "
                                        "(none: no limit)")


class Cell(NamedTuple):
    """index: position on every axis; coords: axis name -> value."""

    index: tuple
    coords: dict


@dataclass(frozen=True)
class Grid:
    """A validated grid (see the module docstring). Build it with `Grid.from_dict` or `Grid.from_toml`."""

    task: str
    preset: str | None
    settings: dict
    axes: dict  # name -> tuple of values, the width axis N included
    sampling: SweepSampleSettings | None

    # -- construction -------------------------------------------------------------------------------------------
    @classmethod
    def from_toml(cls, path, overrides=()) -> "Grid":
        """The grid in TOML file `path`; `overrides` are "table.key=value" texts (e.g. "settings.n_test=200",
        "axes.temperature=0.1,1", "task=markov")."""
        return cls.from_dict(_apply_overrides(read_toml(path), overrides), str(path))

    @classmethod
    def from_dict(cls, raw: dict, source: str = "grid") -> "Grid":
        unknown = sorted(set(raw) - set(TABLES))
        if unknown:
            raise ValueError(f"{source}: unknown key(s) {unknown}; a grid has {', '.join(TABLES)}")
        task = SWEEP_TASKS[str(raw.get("task", "markov"))]
        preset = raw.get("preset")
        fixed = dict(raw.get("settings", {}))
        axes = {str(k): v for k, v in dict(raw.get("axes", {})).items()}
        base = _base_settings(task, preset, fixed, source)
        axes = _check_axes(task, base, fixed, axes, source)
        sampling = raw.get("sampling")
        if sampling is not None:
            sampling = SweepSampleSettings().updated(dict(sampling), f"{source} [sampling]")
        return cls(task.name, preset, fixed, axes, sampling)

    # -- what it holds ------------------------------------------------------------------------------------------
    @property
    def sweep_task(self) -> SweepTask:
        return SWEEP_TASKS[self.task]

    def base_settings(self) -> Settings:
        return _base_settings(self.sweep_task, self.preset, self.settings, "grid")

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.axes.values())

    @property
    def size(self) -> int:
        n = 1
        for k in self.shape:
            n *= k
        return n

    def cells(self) -> Iterator[Cell]:
        names = list(self.axes)
        for index in itertools.product(*(range(n) for n in self.shape)):
            yield Cell(index, {a: self.axes[a][i] for a, i in zip(names, index)})

    def cell_settings(self, coords: dict) -> Settings:
        """The task's settings of the cell at `coords` (ValueError if that combination is invalid)."""
        task = self.sweep_task
        changes = {k: v for k, v in coords.items() if k not in (WIDTH_AXIS, LOAD_AXIS)}
        N = float(coords[WIDTH_AXIS])
        changes[task.width_field] = (N,)
        if LOAD_AXIS in coords:
            changes[task.examples_field] = task.examples_for(float(coords[LOAD_AXIS]), N)
        return self.base_settings().updated(changes, "cell " + ", ".join(f"{k}={v}" for k, v in coords.items()))

    def identity(self) -> dict:
        """What determines the results (compared when a sweep is resumed)."""
        return {"task": self.task, "settings": self.base_settings().identity(),
                "axes": {k: list(v) for k, v in self.axes.items()},
                "sampling": None if self.sampling is None else self.sampling.identity()}

    def to_dict(self) -> dict:
        """The grid as a TOML-able dict that `from_dict` reads back."""
        out = {"task": self.task, "settings": dict(self.settings), "axes": {k: list(v) for k, v in
                                                                           self.axes.items()}}
        if self.preset is not None:
            out["preset"] = self.preset
        if self.sampling is not None:
            out["sampling"] = {k: v for k, v in self.sampling.to_dict().items() if v is not None}
        return out


def _base_settings(task: SweepTask, preset, fixed: dict, source: str) -> Settings:
    for key in fixed:
        if key in task.excluded:
            raise ValueError(f"{source}: setting {key!r} cannot be set in a sweep: {task.excluded[key]}")
    return task.settings.resolve(task.presets, preset).updated(fixed, f"{source} [settings]")


def _check_axes(task: SweepTask, base: Settings, fixed: dict, axes: dict, source: str) -> dict:
    """Each axis as a tuple of values checked against its settings field; the width axis N always present."""
    out = {}
    for name, values in axes.items():
        where = f"{source} [axes] {name}"
        if not isinstance(values, (list, tuple)) or len(values) == 0:
            raise ValueError(f"{where}: an axis must be a non-empty list of values; got {values!r}")
        if len(set(map(repr, values))) != len(values):
            raise ValueError(f"{where}: an axis must not repeat a value; got {values!r}")
        if name in fixed:
            raise ValueError(f"{where}: {name!r} is both fixed in [settings] and an axis; keep one")
        if name in task.excluded:
            raise ValueError(f"{where}: {name!r} cannot be swept: {task.excluded[name]}")
        if name == WIDTH_AXIS:
            if task.width_field in fixed:
                raise ValueError(f"{where}: the widths are given twice ([settings] {task.width_field} and axis N)")
            info = base.field(task.width_field)
            out[name] = tuple(_checked(base, info, (v,), where)[0] for v in values)
            continue
        if name == LOAD_AXIS:
            if task.examples_field is None:
                raise ValueError(f"{where}: task {task.name!r} has no number of examples to set from alpha")
            out[name] = tuple(_positive_number(v, where) for v in values)
            continue
        if name in (task.width_field, task.examples_field if LOAD_AXIS in axes else None):
            raise ValueError(f"{where}: set {name!r} through the axis "
                             f"{WIDTH_AXIS if name == task.width_field else LOAD_AXIS}")
        try:
            info = base.field(name)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        out[name] = tuple(_checked(base, info, v, where) for v in values)
    if WIDTH_AXIS not in out:
        out = {WIDTH_AXIS: tuple(getattr(base, task.width_field)), **out}
    return out


def _checked(base: Settings, info, value, where: str):
    try:
        return base.check_value(info, value)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def _positive_number(v, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
        raise ValueError(f"{where}: every load alpha = P/N must be a number > 0; got {v!r}")
    return float(v)


def _apply_overrides(raw: dict, overrides) -> dict:
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for text in overrides:
        key, sep, value = str(text).partition("=")
        table, dot, name = key.strip().partition(".")
        if not sep or table not in TABLES or (table in ("task", "preset")) == bool(dot):
            raise ValueError(f"--set expects task=NAME, preset=NAME or TABLE.KEY=VALUE with TABLE one of "
                             f"settings, axes, sampling; got {text!r}")
        if not dot:
            raw[table] = value.strip()
            continue
        parsed = _parse_value(value)
        if table == "axes" and not isinstance(parsed, list):
            parsed = [parsed]  # a one-value axis
        raw.setdefault(table, {})[name.strip()] = parsed
    return raw


def _parse_value(text: str):
    """A --set value as TOML would read it (numbers, true/false, quoted or bare strings, comma lists)."""
    import tomllib

    text = text.strip()
    for candidate in (text, f"[{text}]" if "," in text and not text.startswith("[") else None, f'"{text}"'):
        if candidate is None:
            continue
        try:
            return tomllib.loads(f"v = {candidate}")["v"]
        except tomllib.TOMLDecodeError:
            continue
    raise ValueError(f"cannot read --set value {text!r}")


def replace_axes(grid: Grid, **axes) -> Grid:
    """A copy of `grid` with some axes replaced (values are re-checked)."""
    raw = grid.to_dict()
    raw["axes"] = {**raw["axes"], **{k: list(v) for k, v in axes.items()}}
    return Grid.from_dict(raw)



def axis_labels(grid: Grid) -> dict:
    """Axis name -> (long_name, units) of its coordinate in the store: the width and the load by their meaning,
    every other axis by the help text of its settings field (all of them dimensionless)."""
    base = grid.base_settings()
    special = {WIDTH_AXIS: "width N", LOAD_AXIS: "load alpha = P / N"}
    return {name: (special.get(name) or base.field(name).help, "1") for name in grid.axes}


def grid_toml(grid: Grid) -> str:
    """The grid as a TOML file that `Grid.from_toml` reads back."""
    raw = grid.to_dict()
    lines = [f"{k} = {toml_value(raw[k])}" for k in ("task", "preset") if k in raw]
    for table in ("settings", "axes", "sampling"):
        if raw.get(table):
            lines += ["", f"[{table}]"] + [f"{k} = {toml_value(v)}" for k, v in raw[table].items()]
    return "\n".join(lines) + "\n"
