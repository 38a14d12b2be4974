"""The one-shot theory grid at the `cpu` preset's size, old warm starts vs new, in one run (issue 18).

Problem: the `cpu` preset's input (Omniglot 32 x 32 x 3, 8 x 8 patches: N0 = 192, 48 tokens, 16 paths = 4 x 4
heads, one draw of P = 600 class-sorted theory episodes, 1000 validation episodes) on the paper's grid of 10
widths x 13 temperatures (`oneshot.settings.PAPER_WIDTHS`, `PAPER_TEMPERATURES`; no extra temperatures).
Heads: the `cpu` preset's network (width 64, G = 16, float32, AdamW 1e-3, batch 128) trained for --train-steps
steps instead of its 4000 (about 30 minutes here), keeping its best validation checkpoint; the training is
checkpointed in --checkpoint, so it runs once and later runs load it (a longer --train-steps resumes it).

Both sides run `theory_stage` (validation and GP predictions included, as in a run), each on a fresh progress
file, with the rule that gives each solve its starts:
* old: `neighbour_starts`, the rule of the stage before issue 18 (widths largest first, each from the previous
  width; the largest from the nearest solved temperature);
* new: `warm_starts`, the parallelogram of the three solved neighbours in (N, T) first.
(Before issue 18 the stage also put the training data in its route's form once per temperature rather than once
per draw; that costs well under a second per temperature and is not reproduced.)

Per cell: Newton iterations, seconds (solve and validation prediction) and the action of both sides, and their
relative difference; then the totals. --profile adds one Newton step of the one-shot problem piece by piece
(`profile_step.Pieces`), against the machine's matmul rate.

    python benchmarks/oneshot_grid.py                                   # the full grid (several minutes)
    python benchmarks/oneshot_grid.py --widths 10 100 1000 --temperatures 0.01 0.1 1
    python benchmarks/oneshot_grid.py --profile --sides                 # only the profile
    python benchmarks/oneshot_grid.py --sides new --against 00eaa34     # the new side on another commit's solver too

--against REV runs the new side's grid a second time on REV's solver (a detached worktree, `scale.checkout`), in a
fresh process after this one's, and prints both side by side: Newton iterations, seconds and actions per cell.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, os.path.dirname(__file__))


def settings(args):
    from attnpaths.experiments.oneshot import PRESETS, OneShotSettings
    from attnpaths.experiments.oneshot.settings import PAPER_TEMPERATURES, PAPER_WIDTHS

    return OneShotSettings.resolve(PRESETS, "cpu").updated(
        {"train_steps": args.train_steps, "eval_every": 100, "widths": tuple(args.widths or PAPER_WIDTHS),
         "temperatures": tuple(args.temperatures or PAPER_TEMPERATURES), "extra_temperatures": (),
         "progress": False}, "benchmark")


def trained_features(s, checkpoint: Path):
    """The theory's path features of draw 0 on the heads trained for s.train_steps (checkpointed)."""
    from attnpaths.experiments.oneshot.data import build_episodes
    from attnpaths.experiments.oneshot.theory import features
    from attnpaths.experiments.oneshot.train import train_stage

    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    episodes = build_episodes(s)
    net = train_stage(s, episodes, checkpoint, True, False, print)
    f = features(s, episodes, net, 0)
    return f.__class__(f.train_x, f.train_y, {"validation": f.sets["validation"]})


def run_side(s, f, starts):
    from attnpaths.experiments.oneshot.theory import theory_stage

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        grid = theory_stage(s, f, Path(tmp) / "theory.partial.npz", lambda line: None, starts=starts)
        return grid, time.perf_counter() - t


def profile(s, f, steps: int) -> None:
    """One-shot Newton steps piece by piece (N = smallest width, T = lowest temperature, from the GP point)."""
    import attnpaths as ap
    from attnpaths.experiments.oneshot.theory import theory_spec
    from profile_step import Pieces, matmul_rates

    np_rate, jax_rate, jax_cpu_rate = matmul_rates()
    print(f"dense float64 matmul 2000 x 2000: numpy {np_rate:.1f} GFLOP/s, jax {jax_rate:.1f} GFLOP/s (wall, "
          f"best of 5); jax {jax_cpu_rate:.1f} GFLOP per CPU-second; load average {os.getloadavg()[0]:.1f}")
    spec = theory_spec(s).with_width(min(s.widths)).replace(temperature=min(s.temperatures))
    data = ap.training_data(spec, f.train_x, f.train_y)
    pieces = Pieces()
    pieces.install()
    ap.solve_saddle(spec, data, max_iter=1, raise_on_failure=False)  # compiles every piece
    pieces.active = True
    t = time.perf_counter()
    out = ap.solve_saddle(spec, data, max_iter=steps, raise_on_failure=False)
    wall = time.perf_counter() - t
    pieces.active = False
    print(f"\none-shot problem N = {min(s.widths):g}, T = {min(s.temperatures):g}, P = {s.n_theory_train}, "
          f"route {out.route}, method {out.method}: {out.iterations} iterations in {wall:.2f} s "
          f"(initial model and certificate included)")
    print("\n| piece | calls | wall s/call | cpu s/call | GFLOP/call | GFLOP/s | x flops (wall) | x flops (cpu) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in sorted(pieces.calls, key=lambda n: -pieces.wall[n]):
        calls, fl = pieces.calls[name], pieces.flops.get(name, float("nan"))
        w, c = pieces.wall[name] / calls, pieces.cpu[name] / calls
        ratio = w / (fl / (jax_rate * 1e9)) if fl > 0 else float("nan")
        cpu_ratio = c / (fl / (jax_cpu_rate * 1e9)) if fl > 0 else float("nan")
        print(f"| {name} | {calls} | {w:.3f} | {c:.3f} | {fl / 1e9:.3g} | "
              f"{fl / w / 1e9 if fl > 0 else float('nan'):.3g} | {ratio:.3g} | {cpu_ratio:.3g} |")


def table(s, old, new, labels=("old", "new")) -> None:
    (g_old, t_old), (g_new, t_new) = old, new
    a_, b_ = labels
    print(f"\n| N | T | {a_} it | {a_} s | {b_} it | {b_} s | {a_} action | {b_} action | |dS|/S |")
    print("|---|---|---|---|---|---|---|---|---|")
    worst, totals = 0.0, {"old": [0, 0.0, 0], "new": [0, 0.0, 0]}
    for T in g_new.temperatures:
        for N in reversed(g_new.widths):
            a, b = g_old.row(N, T), g_new.row(N, T)
            for key, r in (("old", a), ("new", b)):
                totals[key][0] += r.get("iterations") or 0
                totals[key][1] += r["seconds"]
                totals[key][2] += not r["converged"]
            if a["converged"] and b["converged"]:
                rel = abs(a["action"] - b["action"]) / abs(a["action"])
                worst = max(worst, rel)
            else:
                rel = float("nan")
            print(f"| {N:g} | {T:g} | {a.get('iterations', '-')} | {a['seconds']:.2f} | {b.get('iterations', '-')} "
                  f"| {b['seconds']:.2f} | {a.get('action', math.nan):.12e} | {b.get('action', math.nan):.12e} "
                  f"| {rel:.1e} |")
    n = len(g_new.widths) * len(g_new.temperatures)
    print(f"\n{len(g_new.widths)} widths x {len(g_new.temperatures)} temperatures = {n} cells; "
          f"load average {os.getloadavg()[0]:.1f} (1 min) at the end")
    print("| side | Newton iterations | solve + prediction s (sum over cells) | stage s (GP predictions included) "
          "| failed cells |")
    print("|---|---|---|---|---|")
    for key, t in (("old", t_old), ("new", t_new)):
        it, sec, failed = totals[key]
        print(f"| {labels[key == 'new']} | {it} | {sec:.1f} | {t:.1f} | {failed} |")
    print(f"largest relative action difference {a_} vs {b_}: {worst:.1e}")


class _StoredGrid:
    """A grid's rows as `--dump` wrote them, with `TheoryGrid`'s lookups (`table` reads only these)."""

    def __init__(self, stored: dict):
        self.widths, self.temperatures, self.rows = stored["widths"], stored["temperatures"], stored["rows"]

    def row(self, N: float, T: float) -> dict:
        i, j = self.widths.index(float(N)), self.temperatures.index(float(T))
        return self.rows[i * len(self.temperatures) + j]


def against_side(args) -> tuple[_StoredGrid, float]:
    """The new side's grid on revision args.against's solver: this script in a fresh process with that
    revision's package first on its path, its rows passed back through --dump."""
    from scale import checkout

    src = checkout(args.against)
    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "grid.json"
        cmd = [sys.executable, os.path.abspath(__file__), "--sides", "new", "--dump", str(dump),
               "--train-steps", str(args.train_steps), "--checkpoint", str(args.checkpoint)]
        cmd += ["--widths", *map(str, args.widths)] if args.widths else []
        cmd += ["--temperatures", *map(str, args.temperatures)] if args.temperatures else []
        done = subprocess.run(cmd, env=dict(os.environ, PYTHONPATH=src), capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"--against {args.against}: the grid failed there:\n{done.stderr[-2000:]}")
        stored = json.loads(dump.read_text())
    return _StoredGrid(stored), stored["seconds"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-steps", type=int, default=400)
    parser.add_argument("--checkpoint", type=Path, default=Path("/tmp/attnpaths-oneshot-grid/train.npz"))
    parser.add_argument("--widths", type=float, nargs="+")
    parser.add_argument("--temperatures", type=float, nargs="+")
    parser.add_argument("--sides", nargs="*", default=["old", "new"], choices=["old", "new"],
                        help="which sides to run (the table needs both)")
    parser.add_argument("--profile", action="store_true", help="also profile one-shot Newton steps")
    parser.add_argument("--profile-steps", type=int, default=2)
    parser.add_argument("--against", metavar="REV",
                        help="also run the new side on this git revision's solver, in a fresh process, and print "
                             "both side by side (default: none)")
    parser.add_argument("--dump", type=Path, help=argparse.SUPPRESS)  # --against's subprocess: the rows as JSON
    args = parser.parse_args()
    if (args.against or args.dump) and "new" not in args.sides:
        parser.error("--against needs the new side (--sides new)")

    import jax

    from attnpaths.experiments.oneshot.theory import neighbour_starts, warm_starts

    s = settings(args)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} (1 min) at the start")
    f = trained_features(s, args.checkpoint)
    sides = {}
    for key, starts in (("old", neighbour_starts), ("new", warm_starts)):
        if key in args.sides:
            sides[key] = run_side(s, f, starts)
            grid, seconds = sides[key]
            its = sum(r.get("iterations") or 0 for r in grid.rows)
            print(f"{key}: {its} Newton iterations, {seconds:.1f} s", flush=True)
    if len(sides) == 2:
        table(s, sides["old"], sides["new"])
    for key, (grid, _) in sides.items() if len(sides) == 1 else ():
        print(f"\n| N | T | {key} it | {key} s | {key} action |\n|---|---|---|---|---|")
        for r in grid.rows:
            print(f"| {r['N']:g} | {r['T']:g} | {r.get('iterations', '-')} | {r['seconds']:.2f} | "
                  f"{r.get('action', math.nan):.12e} |")
    if args.dump:
        grid, seconds = sides["new"]
        args.dump.write_text(json.dumps({"widths": list(grid.widths), "temperatures": list(grid.temperatures),
                                         "rows": grid.rows, "seconds": seconds},
                                        default=lambda x: x.item() if hasattr(x, "item") else None))
    if args.against:
        table(s, against_side(args), sides["new"], labels=(args.against, "now"))
    if args.profile:
        profile(s, f, args.profile_steps)


if __name__ == "__main__":
    main()
