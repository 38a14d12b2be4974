"""Plugins: packages that add experiments, data sources, head types, samplers or presets to the `attnpaths`
command when they are installed, without any script of the user's.

A plugin declares an entry point in the group `attnpaths.plugins` of its pyproject.toml:

    [project.entry-points."attnpaths.plugins"]
    my-task = "my_package.attnpaths_plugin"            # a module: importing it registers
    # or  my-task = "my_package.attnpaths_plugin:register"   (a function called with no arguments)

and registers there with the library's own calls (`EXPERIMENTS.register`, `DATA_SOURCES.register`,
`register_heads`, `register_sampler`, `register_preset`). The command line loads every plugin before it builds
its sub-commands, so `attnpaths --help` lists a plugin's experiment. A plugin that fails to load is skipped with
one warning line that names it; the library's own commands still work.
"""

from __future__ import annotations

import functools
import sys
from importlib.metadata import entry_points

GROUP = "attnpaths.plugins"


@functools.cache
def load_plugins() -> tuple[str, ...]:
    """Load every installed plugin (entry points of group `GROUP`) once per process; returns the names of those
    that loaded. A broken plugin (import error, failing register function) gives one warning line on stderr."""
    loaded = []
    for ep in sorted(entry_points(group=GROUP), key=lambda ep: ep.name):
        try:
            obj = ep.load()
            if callable(obj):
                obj()
        except Exception as err:  # noqa: BLE001 (any fault of a plugin must not take the command down)
            dist = getattr(ep.dist, "name", None)
            source = f" from {dist}" if dist else ""
            print(f"attnpaths: warning: plugin {ep.name!r} ({ep.value}{source}) was not loaded: "
                  f"{type(err).__name__}: {err}".replace("\n", " "), file=sys.stderr)
            continue
        loaded.append(ep.name)
    return tuple(loaded)
