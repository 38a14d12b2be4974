"""JAX's persistent compilation cache, on by default, so that a second run of a command compiles nothing.

Importing attnpaths calls `set_compile_cache()` once: compiled executables go to a per-user folder
(`$XDG_CACHE_HOME/attnpaths/jax`, by default `~/.cache/attnpaths/jax`), shared by every process of that user.
Call `set_compile_cache(path)` to move it, `set_compile_cache(None)` to turn it off; the command line has
`--compile-cache DIR|off`. A cache folder that cannot be written gives a warning and the run goes on uncached.
If the user has configured JAX's cache already (`JAX_COMPILATION_CACHE_DIR` or `jax.config`), it is left alone.

JAX's cache is process-wide state by JAX's design; this module only chooses its folder.
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from pathlib import Path

import jax
from jax.experimental.compilation_cache import compilation_cache


def default_cache_dir() -> Path:
    """The per-user cache folder: $XDG_CACHE_HOME/attnpaths/jax, else ~/.cache/attnpaths/jax."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "attnpaths" / "jax"


def _writable(folder: Path) -> str | None:
    """None if `folder` can be created and written, else the reason."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError as err:
        return f"{type(err).__name__}: {err}"
    return None


def set_compile_cache(path: str | os.PathLike | None = "default") -> Path | None:
    """Use `path` as JAX's persistent compilation cache ('default': `default_cache_dir()`; None: off).

    Every compilation is cached, however fast (the theory's many small executables are what a second run
    would otherwise recompile). Returns the folder in use, or None when caching is off.
    """
    compilation_cache.reset_cache()  # JAX opens its cache at the first compilation: let it reopen with these
    if path is None:
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    folder = default_cache_dir() if str(path) == "default" else Path(path).expanduser()
    problem = _writable(folder)
    if problem is not None:
        warnings.warn(f"the compilation cache folder {folder} cannot be written ({problem}); running without "
                      "a persistent compilation cache (set another folder with --compile-cache DIR or "
                      "attnpaths.set_compile_cache)", RuntimeWarning, stacklevel=2)
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder


def configure_default_compile_cache() -> Path | None:
    """At import: the default folder, unless JAX's cache was configured by the user already."""
    if jax.config.jax_compilation_cache_dir or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return Path(jax.config.jax_compilation_cache_dir or os.environ["JAX_COMPILATION_CACHE_DIR"])
    return set_compile_cache("default")


# ---- how much of a run was compilation --------------------------------------------------------------------
_COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration",
                   "/jax/core/compile/backend_compile_duration")
_collectors: list["CompileTime"] = []
_listening = False


def _on_duration(event: str, seconds: float, **_) -> None:
    now = time.perf_counter()
    for c in _collectors:
        if event in _COMPILE_EVENTS:
            c.seconds += seconds
            c.intervals.append((now - seconds, now))
        elif event == "/jax/compilation_cache/cache_retrieval_time_sec":
            c.cache_seconds += seconds
            c.intervals.append((now - seconds, now))


def _on_event(event: str, **_) -> None:
    for c in _collectors:
        if event == "/jax/compilation_cache/cache_hits":
            c.cache_hits += 1
        elif event == "/jax/compilation_cache/cache_misses":
            c.cache_misses += 1


class CompileTime:
    """Seconds spent tracing and compiling (and loading from the persistent cache) inside a `with` block.

        with CompileTime() as ct:
            run()
        print(f"{ct.seconds:.1f} s compiling, {ct.cache_hits} executables from the cache")
    """

    def __init__(self):
        self.seconds = 0.0
        self.cache_seconds = 0.0
        self.cache_hits = 0
        self.cache_misses = 0
        # (start, end) in time.perf_counter() of every compile event: nested traces and compiles on several threads
        # overlap, so summed durations overstate the wall time; experiments.timing takes their union
        self.intervals: list[tuple[float, float]] = []

    @property
    def total_seconds(self) -> float:
        """Tracing + compiling + loading executables from the persistent cache."""
        return self.seconds + self.cache_seconds

    def summary(self) -> str:
        return (f"JAX compilation {self.total_seconds:.1f} s ({self.cache_misses} executables compiled, "
                f"{self.cache_hits} loaded from the persistent cache)")

    def __enter__(self) -> "CompileTime":
        global _listening
        if not _listening:
            jax.monitoring.register_event_duration_secs_listener(_on_duration)
            jax.monitoring.register_event_listener(_on_event)
            _listening = True
        _collectors.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _collectors.remove(self)
