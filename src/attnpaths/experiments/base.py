"""The experiment registry: every command of `attnpaths` that runs an experiment is one entry.

An `Experiment` bundles its settings class, its presets and the function that runs it into an output folder;
the command line builds one sub-command per entry (its options are the settings' fields), and `attnpaths sample`
finds a saved run's experiment here by the name stored in the run. A user registers their own experiment the
same way and gets a command for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from attnpaths._src.registry import Registry


@dataclass(frozen=True)
class Experiment:
    """One experiment.

    name: the command name.
    help: one line for `attnpaths --help`.
    settings: its `Settings` class (every field becomes an option).
    presets: registry of its presets (`--preset NAME`).
    run: run(settings, out, resume, log) -> results dict (also written to OUT/results.json); it draws no figures.
    report: report(results, seconds) -> the lines printed at the end of the command.
    add_samples: add_samples(out, SampleSettings, resume, log) -> results, for `attnpaths sample OUT`: a stage
      added to the finished run, results.json rebuilt from the stage records; None if the experiment has no
      posterior to sample.
    sample_settings: sample_settings(run_settings) -> the SampleSettings the run itself used (or would use), the
      defaults of `attnpaths sample OUT` (None: SampleSettings' own defaults).
    figures: figures(results, out) -> the figure files, drawn from the results alone (the one place the
      experiment's figures are drawn: after its run by `execute`, and again by `attnpaths sample`, through
      `draw`). None: no figures.
    """

    name: str
    help: str
    settings: type
    presets: Registry
    run: Callable[..., dict]
    report: Callable[[dict, float], list]
    add_samples: Callable[..., dict] | None = None
    sample_settings: Callable[..., object] | None = None
    figures: Callable[..., list] | None = None

    def draw(self, results: dict, out) -> list:
        """The experiment's figures drawn into `out` from `results` alone; the files ([] if it declares none)."""
        return [] if self.figures is None else list(self.figures(results, out))

    def execute(self, settings, out, resume: bool = False, log: Callable[[str], None] = print) -> dict:
        """What its command does: run the experiment into `out` (or continue it, with `resume`), then draw its
        figures from the results. Returns the results."""
        results = self.run(settings, out, resume, log)
        files = self.draw(results, out)
        if files:
            log("figures: " + ", ".join(str(f) for f in files))
        return results

    def resolve(self, preset=None, config=None, overrides=(), flags=None):
        """The experiment's settings from a preset, a TOML file, flags and key=value overrides."""
        return self.settings.resolve(self.presets, preset, config, overrides, flags)


EXPERIMENTS: Registry[Experiment] = Registry("experiment")


def results_path(out) -> Path:
    return Path(out) / "results.json"
