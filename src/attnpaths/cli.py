"""Command line: one sub-command per registered experiment (`attnpaths markov`, `attnpaths oneshot`,
`attnpaths oneshot-study`, ...) and `attnpaths sample RUN`.

Every settings field of an experiment is an option (`--n-test 400`), and can also be set from a TOML file
(`--config FILE`), a preset (`--preset NAME`) or `--set key=value`; later sources override earlier ones:
defaults < preset < config < options < --set.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
import time
import typing

from attnpaths._src.compile_cache import CompileTime
from attnpaths.experiments.base import EXPERIMENTS
from attnpaths.experiments.outputs import claim_output, describe_stored
from attnpaths.experiments.runner import OutputInUse
from attnpaths.experiments.settings import format_value
from attnpaths.experiments.timing import active_timeline, timing_report


_METAVARS = {int: "INT", float: "NUMBER", str: "TEXT"}


def _default(value) -> str:
    return f" (default: {format_value(value)})"


SETTINGS_TITLE = "settings (also settable with --set KEY=VALUE or in a --config file)"


def add_settings_options(parser: argparse.ArgumentParser, settings_cls, title: str = SETTINGS_TITLE) -> None:
    """One option per settings field, with its help text and default; values stay text until the settings
    parse them (so every error names the field)."""
    group = parser.add_argument_group(title)
    for f in settings_cls.fields():
        flag = "--" + f.name.replace("_", "-")
        help_text = (f.help + _default(f.default)).replace("%", "%%")  # argparse formats help with %
        kwargs = dict(dest=f"setting:{f.name}", default=argparse.SUPPRESS, help=help_text)
        base = f.type
        if typing.get_origin(base) in (typing.Union, type(int | None)):
            base = next(a for a in typing.get_args(base) if a is not type(None))
        if base is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        elif typing.get_origin(base) is tuple:
            group.add_argument(flag, nargs="*", metavar=_METAVARS.get(typing.get_args(base)[0], "VALUE"), **kwargs)
        else:
            names = f.choice_names()
            group.add_argument(flag, metavar="{" + ",".join(names) + "}" if names else _METAVARS.get(base, "VALUE"),
                               choices=names, **kwargs)


def _flags(args) -> dict:
    out = {}
    for key, value in vars(args).items():
        if key.startswith("setting:"):
            out[key.split(":", 1)[1]] = ",".join(value) if isinstance(value, list) else value
    return out


def _add_compile_cache(p: argparse.ArgumentParser) -> None:
    from attnpaths._src.compile_cache import default_cache_dir

    p.add_argument("--compile-cache", metavar="DIR|off", default=None,
                   help="folder of JAX's persistent compilation cache, so that a second run compiles nothing; "
                        "'off' turns it off" + _default(str(default_cache_dir())))


def _use_compile_cache(value: str | None) -> None:
    from attnpaths._src.compile_cache import set_compile_cache

    if value is not None:
        set_compile_cache(None if value.lower() == "off" else value)


def _add_overwrite(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help="start over in an output folder that holds a run: the old run is moved aside to "
                        "OUT.old-YYYYMMDD-HHMMSS (nothing is deleted); without --resume or --overwrite such a "
                        "folder is refused" + _default(False))


def _add_common(p: argparse.ArgumentParser, presets=None) -> None:
    _add_compile_cache(p)
    if presets is not None:
        p.add_argument("--preset", choices=presets.names(), default=None,
                       help="start from a named preset (listed at the end)" + _default(None))
    p.add_argument("--config", metavar="FILE", default=None,
                   help="TOML file of settings (keys = the settings below)" + _default(None))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="set one setting (repeatable; lists as 10,30,100)" + _default(None))
    p.add_argument("--resume", action="store_true",
                   help="continue the run in the output folder (same settings) instead of starting over"
                        + _default(False))
    p.add_argument("--print-settings", action="store_true",
                   help="print the resolved settings as TOML and exit" + _default(False))


def _experiment_command(experiment):
    def run(args) -> int:
        settings = experiment.resolve(args.preset, args.config, args.overrides, _flags(args))
        if args.print_settings:
            print(settings.to_toml(), end="")
            return 0
        claim_output(args.out, args.resume, args.overwrite)
        start = time.perf_counter()
        with CompileTime() as compiling, active_timeline() as timeline:
            results = experiment.execute(settings, args.out, args.resume, print)
        end = time.perf_counter()
        for line in experiment.report(results, end - start):
            print(line)
        print(timing_report(start, end, compiling, timeline))
        return 0
    return run


def _sample(args) -> int:
    from attnpaths.experiments.sampling import SampleSettings, sample_saved_run

    flags = _flags(args)
    settings = SampleSettings.resolve(None, None, args.config, args.overrides, flags)
    if args.print_settings:
        print(settings.to_toml(), end="")
        return 0
    # the options given on this command line; every other setting is the run's own
    given = set(flags) | {t.partition("=")[0].strip() for t in args.overrides}
    if args.config is not None:
        from attnpaths.experiments.settings import read_toml

        given |= set(read_toml(args.config))
    start = time.perf_counter()
    with CompileTime() as compiling, active_timeline() as timeline:
        sample_saved_run(args.run, settings, resume=True, given=sorted(SampleSettings.field(k).name for k in given))
    print(timing_report(start, time.perf_counter(), compiling, timeline))
    return 0


def _sweep(args) -> int:
    from attnpaths.experiments.sweep import SweepOptions, sweep_command

    options = SweepOptions.resolve(None, None, None, (), _flags(args))
    try:
        sweep_command(args.grid, options, args.overrides, args.resume, args.print_settings,
                      overwrite=args.overwrite)
    except ImportError as err:
        print(f"attnpaths sweep: error: {err}", file=sys.stderr)
        return 2
    return 0


def _add_sweep(sub) -> None:
    from attnpaths.experiments.sweep import SweepOptions

    p = sub.add_parser("sweep", help="run a grid of cells (theory + GP, optional samples) on Dask into one "
                                     "labelled store", description="run a grid of cells on a Dask cluster; see "
                                     "docs/sweeps.md for the grid file")
    p.add_argument("grid", help="TOML grid file: task, preset, [settings], [axes], [sampling]")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="TABLE.KEY=VALUE",
                   help="change the grid file (repeatable): settings.n_test=200, axes.temperature=0.1,1, "
                        "task=markov" + _default(None))
    p.add_argument("--resume", action="store_true",
                   help="continue the sweep in the output folder (same grid): stored cells are never computed "
                        "again" + _default(False))
    _add_overwrite(p)
    p.add_argument("--print-settings", action="store_true",
                   help="print the resolved grid as TOML and exit" + _default(False))
    _add_compile_cache(p)
    add_settings_options(p, SweepOptions, "where and how the sweep runs")
    p.set_defaults(func=_sweep)


def _preset_list(presets) -> str:
    lines = [f"  {name}: {presets[name].description}" for name in presets.names()]
    return "presets:\n" + "\n".join(lines) if lines else ""


def build_parser() -> argparse.ArgumentParser:
    import attnpaths.experiments  # noqa: F401 (registers the library's experiments)
    from attnpaths.experiments.sampling import SampleSettings
    from attnpaths.plugins import load_plugins

    load_plugins()  # installed packages' experiments, data sources, heads, samplers, presets (entry points)

    parser = argparse.ArgumentParser(prog="attnpaths", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in EXPERIMENTS.names():
        e = EXPERIMENTS[name]
        p = sub.add_parser(name, help=e.help.replace("%", "%%"), description=e.help, epilog=_preset_list(e.presets),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--out", default=f"results/{name}", help="output folder" + _default(f"results/{name}"))
        _add_common(p, e.presets)
        _add_overwrite(p)
        add_settings_options(p, e.settings)
        p.set_defaults(func=_experiment_command(e))
    s = sub.add_parser("sample", help="add posterior samples to a saved run (any experiment) and redraw its "
                                      "figures", description="add posterior samples to a saved run; settings not "
                                      "given are the run's own, and draws already stored are continued (a second "
                                      "`attnpaths sample` adds to the first; --resume is implied)")
    s.add_argument("run", help="the output folder of a run (it holds run.npz and results.json)")
    _add_common(s)
    add_settings_options(s, SampleSettings)
    s.set_defaults(func=_sample)
    _add_sweep(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it stops the way Ctrl-C does (progress saved on the way)."""


def _signal_handler(seen: list):
    """SIGINT -> KeyboardInterrupt, SIGTERM -> Terminated, and the signal noted in `seen`: Python drops an
    exception raised while it runs a garbage-collection or finaliser callback (JAX has some), so a command that
    returns normally after a signal still ends as interrupted."""

    def handle(signum, frame):
        seen.append(signum)
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    return handle


def _quiet_dropped_interrupts(previous, seen: list):
    """sys.unraisablehook that leaves out the interrupt a garbage-collection callback dropped (it would print
    "Exception ignored in ... Traceback ... KeyboardInterrupt"): the signal is in `seen`, and the command still ends
    with its one line. Anything else goes to the previous hook."""

    def hook(unraisable):
        if not (seen and isinstance(unraisable.exc_value, KeyboardInterrupt)):
            previous(unraisable)

    return hook


def _out_folder(args) -> str | None:
    return getattr(args, "out", None) or getattr(args, "run", None) or (
        _flags(args).get("out", "results/sweep") if args.command == "sweep" else None)


def _continue_command(argv: list[str]) -> str:
    words = [w for w in argv if w != "--overwrite"]
    if words and words[0] != "sample" and "--resume" not in words:
        words.append("--resume")
    return shlex.join(["attnpaths", *words])


def interrupted_line(args, argv: list[str], signame: str) -> str:
    """The one line an interrupted command ends with: what is stored, what is not, the command that continues."""
    out = _out_folder(args)
    if out is None:
        return f"interrupted ({signame})"
    stored, missing = describe_stored(out)
    return f"interrupted ({signame}): stored in {out}: {stored}; {missing}; continue with: {_continue_command(argv)}"


def _end_progress_bars() -> None:
    """Close every live progress bar (tqdm keeps them in a class-level set), so that the interrupted line starts
    on a line of its own instead of after a bar's carriage return."""
    from tqdm.std import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def main(argv=None) -> int:
    console = argv is None  # the installed command, not a call from Python
    argv = list(sys.argv[1:] if argv is None else argv)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    seen: list[int] = []
    if threading.current_thread() is threading.main_thread():
        for sig in handlers:
            signal.signal(sig, _signal_handler(seen))
    unraisable_hook = sys.unraisablehook
    sys.unraisablehook = _quiet_dropped_interrupts(unraisable_hook, seen)
    args = None
    try:
        args = build_parser().parse_args(argv)
        _use_compile_cache(args.compile_cache)
        code = args.func(args)
        if seen:  # the signal's exception was dropped on the way (see _signal_handler)
            raise Terminated() if seen[0] == signal.SIGTERM else KeyboardInterrupt()
        return code
    except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM: one line, no traceback
        terminated = isinstance(err, Terminated)
        if threading.current_thread() is threading.main_thread():
            for sig in handlers:  # a second Ctrl-C must not cut the line short
                signal.signal(sig, signal.SIG_IGN)
        name = "SIGTERM" if terminated else "SIGINT"
        _end_progress_bars()
        print(interrupted_line(args, argv, name) if args is not None else f"interrupted ({name})", file=sys.stderr)
        sys.stderr.flush()
        if console:  # that line is the last: nothing from shutdown (a Dask cluster's atexit hooks, say) follows
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stderr.fileno())
        return 128 + int(signal.SIGTERM if terminated else signal.SIGINT)
    except (ValueError, OutputInUse, ImportError) as err:  # ImportError: a missing extra, with its pip hint
        print(f"attnpaths {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a missing input, an unwritable --out, a full disk: finished records stay intact
        what = f"{err.strerror}: {err.filename}" if err.filename and err.strerror else str(err)
        print(f"attnpaths {args.command}: error: {what}", file=sys.stderr)
        return 2
    finally:
        sys.unraisablehook = unraisable_hook
        if threading.current_thread() is threading.main_thread():
            for sig, handler in handlers.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main())
