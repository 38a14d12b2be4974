"""One timing report per command, whose parts add up to its wall time.

    time: total 25.5 s = JAX compilation 13.8 s + gp 0.4 s + theory 3.3 s + alignment 0.2 s + other 7.8 s

Every part is wall time of this command only. JAX compilation is the union of the intervals in which some
tracing, lowering, compiling or cache loading was going on (on any thread): summing the durations JAX reports
counts nested traces and the cache loads inside a compile twice, and compiles on several threads in parallel
several times (which is how "theory 8.4 s, of which JAX compilation 14.9 s" came about). A stage's part is the
time inside it that is not compilation and not inside a nested stage (a study's seed runs hold the stages of
their one-shot runs). Stages loaded from an earlier run (`--resume`) cost nothing now and are listed apart
(reporting their stored seconds gave "train 2 s, theory 14 s, total 4 s"). "other" is the remainder: imports,
data, figures, writing files.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import time

_CURRENT: contextvars.ContextVar["Timeline | None"] = contextvars.ContextVar("attnpaths_timeline", default=None)


class Timeline:
    """The stages run (and loaded) while it is active, as disjoint (name, start, end) segments of perf_counter."""

    def __init__(self):
        self.segments: list[tuple[str, float, float]] = []
        self.loaded: list[str] = []
        self._stack: list[str] = []
        self._mark = 0.0

    def _cut(self, now: float) -> None:
        if self._stack:
            self.segments.append((self._stack[-1], self._mark, now))
        self._mark = now

    @contextlib.contextmanager
    def stage(self, name: str):
        self._cut(time.perf_counter())
        self._stack.append(name)
        try:
            yield
        finally:
            self._cut(time.perf_counter())
            self._stack.pop()


@contextlib.contextmanager
def active_timeline():
    """A new `Timeline` that the runner's stages of this context record into."""
    timeline = Timeline()
    token = _CURRENT.set(timeline)
    try:
        yield timeline
    finally:
        _CURRENT.reset(token)


def stage_timer(name: str):
    """Context manager timing stage `name` in the active timeline (a no-op without one)."""
    timeline = _CURRENT.get()
    return timeline.stage(name) if timeline is not None else contextlib.nullcontext()


def note_loaded(name: str) -> None:
    timeline = _CURRENT.get()
    if timeline is not None:
        timeline.loaded.append(name)


def _union(intervals, lo: float, hi: float) -> list[tuple[float, float]]:
    merged: list[list[float]] = []
    for a, b in sorted((max(a, lo), min(b, hi)) for a, b in intervals):
        if b <= a:
            continue
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def _overlap(union, a: float, b: float) -> float:
    return sum(max(0.0, min(b, y) - max(a, x)) for x, y in union)


def _group(name: str) -> str:
    """theory.d0, theory.d1 -> theory; seed0, seed1 -> seed."""
    return re.sub(r"\d+$", "", name.split(".")[0]) or name


def timing_parts(start: float, end: float, compile_intervals, timeline: Timeline | None) -> dict[str, float]:
    """{"JAX compilation": s, <stage group>: s, ..., "other": s}: disjoint parts of [start, end] that sum to its
    length (see the module docstring)."""
    union = _union(compile_intervals, start, end)
    parts = {"JAX compilation": sum(b - a for a, b in union)}
    for name, a, b in timeline.segments if timeline is not None else ():
        a, b = max(a, start), min(b, end)
        if b > a:
            key = _group(name)
            parts[key] = parts.get(key, 0.0) + (b - a) - _overlap(union, a, b)
    parts["other"] = (end - start) - sum(parts.values())
    return parts


def timing_report(start: float, end: float, compiling, timeline: Timeline | None) -> str:
    """The command's one timing line (`compiling`: the `CompileTime` of the command)."""
    parts = timing_parts(start, end, compiling.intervals, timeline)
    text = " + ".join(f"{k} {v:.1f} s" for k, v in parts.items() if k == "other" or v >= 0.05)
    line = f"time: total {end - start:.1f} s = {text}"
    if compiling.cache_misses or compiling.cache_hits:
        line += (f" ({compiling.cache_misses} executables compiled, {compiling.cache_hits} loaded from the "
                 "persistent cache)")
    if timeline is not None and timeline.loaded:
        line += f"; loaded from the earlier run, not timed: {', '.join(dict.fromkeys(timeline.loaded))}"
    return line
