"""Typed, validated experiment settings: one frozen dataclass per experiment, filled from defaults, a preset, a
TOML file and `key=value` overrides, in that order.

Every field is declared with `setting(default, help, ...)`, so its meaning travels with it (command-line help,
error messages, the saved settings of a run). Values are coerced to the field's annotated type (int, float, str,
bool, tuple[...] of those, or `X | None`) and validated; a bad value raises ValueError naming the field, an
unknown key raises ValueError naming the key (with the closest known name).

    @dataclass(frozen=True)
    class MySettings(Settings):
        widths: tuple[float, ...] = setting((10.0, 100.0), "widths N of the sweep", check=each(positive))

    s = MySettings.resolve(presets, preset="quick", config="run.toml", overrides=["widths=10,30"])
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from attnpaths._src.registry import Registry, did_you_mean

Check = Callable[[Any], "str | None"]  # returns what is wrong with a value, or None


def setting(default, help: str, *, choices=None, check: Check | None = None, identity: bool = True):
    """A settings field.

    Args:
      default: the value when nothing sets it.
      help: what the field means (shown by --help and in error messages).
      choices: allowed values: a tuple, or a `Registry` whose names are the choices (read when checked, so an
        entry a user registers later is accepted).
      check: more validation: a function value -> None if fine, else the expected form ("a number > 0").
      identity: False for fields that do not change the results (e.g. where the data lives); they are not
        compared when a run is resumed.
    """
    meta = {"help": help, "choices": choices, "check": check, "identity": identity}
    return dataclasses.field(default=default, metadata=meta)


# ----------------------------------------------------------------------------------------------------------------
# checks
# ----------------------------------------------------------------------------------------------------------------

def positive(v) -> str | None:
    return None if v > 0 else "a number > 0"


def nonnegative(v) -> str | None:
    return None if v >= 0 else "a number >= 0"


def at_least(k) -> Check:
    return lambda v: None if v >= k else f"a number >= {k}"


def between(lo, hi, include_lo: bool = False) -> Check:
    if include_lo:
        return lambda v: None if lo <= v < hi else f"a number in [{lo}, {hi})"
    return lambda v: None if lo < v < hi else f"a number in ({lo}, {hi})"


def each(check: Check, nonempty: bool = True) -> Check:
    """Apply `check` to every element of a tuple (and require at least one element)."""
    def run(values):
        if nonempty and len(values) == 0:
            return "a non-empty list"
        for v in values:
            why = check(v)
            if why:
                return f"a list with every entry {why} ({v!r} is not)"
        return None
    return run


# ----------------------------------------------------------------------------------------------------------------
# type coercion
# ----------------------------------------------------------------------------------------------------------------

_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        plural = {int: "ints", float: "numbers", str: "strings", bool: "true/false values"}
        return f"a list of {plural.get(typing.get_args(tp)[0], 'values')}"
    return {int: "an int", float: "a number", str: "a string", bool: "true or false",
            type(None): "none"}.get(tp, str(tp))


def _scalar(tp, value, from_text: bool):
    if tp is bool:
        if isinstance(value, bool):
            return value
        if from_text and str(value).strip().lower() in _TRUE + _FALSE:
            return str(value).strip().lower() in _TRUE
        raise TypeError
    if tp is int:
        if isinstance(value, bool):
            raise TypeError
        if from_text:
            value = float(value) if any(c in str(value) for c in ".eE") else int(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            raise TypeError
        return value
    if tp is float:
        if isinstance(value, bool):
            raise TypeError
        value = float(value) if from_text or isinstance(value, int) else value
        if not isinstance(value, float) or not math.isfinite(value):
            raise TypeError
        return value
    if tp is str:
        if not isinstance(value, str):
            raise TypeError
        return value.strip() if from_text else value
    raise TypeError


def _split_list(text: str) -> list[str]:
    text = text.strip()
    if text[:1] in "[(" and text[-1:] in "])":
        text = text[1:-1]
    parts = [p.strip().strip("'\"") for p in text.replace(" ", ",").split(",")]
    return [p for p in parts if p]


def coerce(tp, value, from_text: bool = False):
    """`value` as type `tp` (int, float, str, bool, tuple[X, ...], X | None). Raises TypeError / ValueError."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None or (from_text and str(value).strip().lower() in ("none", "null")):
            if type(None) in args:
                return None
            raise TypeError
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(a, value, from_text)
            except (TypeError, ValueError):
                pass
        raise TypeError
    if origin is tuple:
        (elem, *_rest) = typing.get_args(tp)
        if from_text and isinstance(value, str):
            value = _split_list(value)
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise TypeError
        return tuple(coerce(elem, v, from_text) for v in value)
    return _scalar(tp, value, from_text)


# ----------------------------------------------------------------------------------------------------------------
# the base class
# ----------------------------------------------------------------------------------------------------------------

class FieldInfo(typing.NamedTuple):
    """One settings field as the CLI and the error messages see it."""

    name: str
    type: Any
    default: Any
    help: str
    choices: Any
    check: Check | None
    identity: bool

    @property
    def type_name(self) -> str:
        return _type_name(self.type)

    def choice_names(self) -> tuple | None:
        c = self.choices
        if c is None:
            return None
        return c.names() if isinstance(c, Registry) else tuple(c)


def _format(value) -> str:
    if isinstance(value, tuple):
        return ",".join(_format(v) for v in value) if value else "(empty)"
    if isinstance(value, float):
        return f"{value:g}"
    return "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Base class of experiment settings: coerces and validates every field after construction."""

    def __post_init__(self):
        for info in self.fields():
            value = getattr(self, info.name)
            object.__setattr__(self, info.name, self.check_value(info, value))

    # -- introspection --------------------------------------------------------------------------------------
    @classmethod
    def fields(cls) -> list[FieldInfo]:
        """Every field with its type, default, help text, choices and check, in declaration order."""
        hints = typing.get_type_hints(cls)
        out = []
        for f in dataclasses.fields(cls):
            meta = f.metadata
            if "help" not in meta:
                raise TypeError(f"{cls.__name__}.{f.name} must be declared with setting(default, help)")
            out.append(FieldInfo(f.name, hints[f.name], f.default, meta["help"], meta["choices"], meta["check"],
                                 meta["identity"]))
        return out

    @classmethod
    def field(cls, name: str) -> FieldInfo:
        """The field called `name` (dashes are read as underscores). ValueError naming unknown keys."""
        key = str(name).strip().replace("-", "_")
        for info in cls.fields():
            if info.name == key:
                return info
        names = [f.name for f in cls.fields()]
        raise ValueError(f"unknown setting {name!r} for {cls.__name__}{did_you_mean(key, names)}; known settings: "
                         f"{', '.join(names)}")

    # -- validation ---------------------------------------------------------------------------------------------
    @classmethod
    def check_value(cls, info: FieldInfo, value, from_text: bool = False):
        """`value` coerced to the field's type and validated; ValueError naming the field otherwise."""
        def fail(why: str):
            raise ValueError(f"setting {info.name!r} must be {why}; got {value!r} [{info.name}: {info.help}]")

        try:
            out = coerce(info.type, value, from_text)
        except (TypeError, ValueError):
            fail(info.type_name)
        names = info.choice_names()
        if names is not None:
            items = out if isinstance(out, tuple) else (out,)
            bad = [v for v in items if v is not None and v not in names]
            if bad:
                fail(f"one of {', '.join(map(str, names))}{did_you_mean(bad[0], names)}")
        if info.check is not None and out is not None:
            why = info.check(out)
            if why:
                fail(why)
        return out

    # -- construction -------------------------------------------------------------------------------------------
    def updated(self, changes: Mapping, source: str = "", from_text: bool = False):
        """A copy with `changes` applied (keys are field names; values coerced, or parsed when from_text)."""
        new = {}
        for key, value in changes.items():
            try:
                info = self.field(key)
                new[info.name] = self.check_value(info, value, from_text)
            except ValueError as err:
                raise ValueError(f"{source}: {err}" if source else str(err)) from None
        try:
            return dataclasses.replace(self, **new)
        except ValueError as err:
            raise ValueError(f"{source}: {err}" if source else str(err)) from None

    @classmethod
    def resolve(cls, presets: Registry | None = None, preset: str | None = None, config=None,
                overrides: Iterable[str] = (), flags: Mapping | None = None):
        """Defaults <- preset <- TOML file `config` <- `flags` (field -> text) <- `overrides` ("key=value" texts).

        Each layer is checked on its own, and an error names the layer ("preset 'cpu'", the file, "--set").
        """
        s = cls()
        if preset is not None:
            if presets is None:
                raise ValueError(f"{cls.__name__} has no presets; got preset {preset!r}")
            s = s.updated(presets[preset].values, f"preset {preset!r}")
        if config is not None:
            s = s.updated(read_toml(config), str(config))
        if flags:
            s = s.updated(flags, "command line", from_text=True)
        for text in overrides:
            key, sep, value = str(text).partition("=")
            if not sep or not key.strip():
                raise ValueError(f"--set expects key=value; got {text!r}")
            s = s.updated({key: value}, f"--set {text}", from_text=True)
        return s

    # -- output -------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain JSON/TOML values (tuples as lists)."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in self.fields()}

    def identity(self) -> dict:
        """The fields that determine the results (compared when a run is resumed)."""
        d = self.to_dict()
        return {f.name: d[f.name] for f in self.fields() if f.identity}

    def to_toml(self) -> str:
        """The settings as a TOML file that `--config` reads back (None values are left out)."""
        lines = [f"# {type(self).__name__}"]
        for f in self.fields():
            v = getattr(self, f.name)
            if v is not None:
                lines.append(f"{f.name} = {_toml_value(v)}  # {f.help}")
        return "\n".join(lines) + "\n"

    @classmethod
    def help_lines(cls) -> list[str]:
        return [f"{f.name} = {_format(f.default)}: {f.help}" for f in cls.fields()]


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "[" + ", ".join(_toml_value(x) for x in v) + "]"


class Preset(typing.NamedTuple):
    """A named set of settings values (a TOML file's keys) with a one-line description."""

    name: str
    description: str
    values: dict


def register_preset(presets: Registry, name: str, values, description: str = "", replace: bool = False) -> Preset:
    """Register a preset: `values` is a mapping of settings or the path of a TOML file (whose optional
    `description` key becomes the description). The values are checked when the preset is used."""
    if not isinstance(values, Mapping):
        values = read_toml(values)
    values = dict(values)
    description = str(values.pop("description", description))
    return presets.register(name, Preset(name, description, values), replace=replace)


def packaged_presets(what: str, folder: str) -> Registry:
    """A registry holding the TOML presets shipped in `attnpaths/experiments/presets/<folder>/*.toml`."""
    from importlib.resources import files

    presets: Registry = Registry(what)
    root = files("attnpaths.experiments") / "presets" / folder
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            register_preset(presets, entry.name[:-5], tomllib.loads(entry.read_text()))
    return presets


def read_toml(path) -> dict:
    """A TOML file as a dict; ValueError naming the file when it is missing or not valid TOML."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"settings file {path} does not exist")
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"settings file {path} is not valid TOML: {err}") from None


def format_value(value) -> str:
    """A settings value as it is typed on the command line."""
    return _format(value)
