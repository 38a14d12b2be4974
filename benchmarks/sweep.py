"""`attnpaths sweep` on 1 vs 2 single-threaded LocalCluster workers, in one run (speed-up = ratio of wall times).

Single-threaded means pinned: `start_client(pin=True)` runs worker i on core i only, because the XLA thread
flags alone leave JAX's CPU runtime on ~1.3 cores (a sweep pins by default when it has one worker per core). The unpinned 1-worker cluster (`--unpinned`, on by default) is timed too,
so the table also shows the speed-up over what one worker gets when it is free to use spare cores.

Each timed sweep runs the same Markov grid into a fresh store: N (5 widths, warm-started) x T (4) x training
set (2), P = 1000 (the Gram route), 500 test sequences: 40 cells, 2 problems. For every worker count a
LocalCluster is started (one thread per worker, `THREAD_ENV`) and warmed up with a small sweep (imports,
compilation), so the timed sweeps measure the sweep itself; "with start" adds the cluster's start and warm-up,
as a user of `attnpaths sweep` sees it for this grid. 1 and 2 workers alternate `--repeats` times. The machine's
load average is printed: on a shared machine other processes take cores from the workers.

    python benchmarks/sweep.py               # 1 vs 2 pinned workers and 1 unpinned worker, 2 repeats
    python benchmarks/sweep.py --repeats 1 --workers 1 2 4 --no-unpinned
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from attnpaths.experiments.sweep import Grid, run_sweep, start_client

GRID = {"task": "markov", "settings": {"n_train": 1000, "n_test": 500},
        "axes": {"N": [10, 30, 100, 300, 1000], "temperature": [0.01, 0.03, 0.1, 0.3], "train_seed": [1, 2]}}
WARM_UP = {"task": "markov", "settings": {"n_train": 1000, "n_test": 500},
           "axes": {"N": [1000, 10], "temperature": [0.1], "train_seed": [3, 4]}}


def sweep_seconds(grid: Grid, client, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    summary = run_sweep(grid, out, client=client, progress=False, log=lambda _: None)
    seconds = time.perf_counter() - t0
    assert summary.computed == grid.size and summary.failed == 0, summary
    return seconds


def timed(grid: Grid, workers: int, pin: bool, root: Path) -> tuple[float, float]:
    """(seconds of the sweep on a warm cluster, seconds including the cluster's start and warm-up)."""
    t0 = time.perf_counter()
    client = start_client(workers=workers, pin=pin)  # pin=True also for fewer workers than cores
    try:
        sweep_seconds(Grid.from_dict(WARM_UP), client, root / "warm-up")
        start = time.perf_counter() - t0
        return (seconds := sweep_seconds(grid, client, root / f"w{workers}")), seconds + start
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts (default: 1 2)")
    parser.add_argument("--repeats", type=int, default=2, help="alternating repeats (default: 2)")
    parser.add_argument("--unpinned", action=argparse.BooleanOptionalAction, default=True,
                        help="also time 1 worker not pinned to a core (default: on)")
    args = parser.parse_args()
    configs = [(w, True) for w in args.workers] + ([(1, False)] if args.unpinned else [])
    grid = Grid.from_dict(GRID)
    print(f"grid: {grid.size} cells, cores available {len(os.sched_getaffinity(0))}, load average before "
          f"{os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        times: dict[tuple[int, bool], list[tuple[float, float]]] = {c: [] for c in configs}
        for _ in range(args.repeats):
            for w, pin in configs:
                times[w, pin].append(timed(grid, w, pin, root))
                print(f"  {w} worker(s), {'pinned' if pin else 'unpinned'}: {times[w, pin][-1][0]:.1f} s "
                      f"({times[w, pin][-1][1]:.1f} s with start), load average {os.getloadavg()[0]:.1f}", flush=True)
    base = min(t for t, _ in times[configs[0]])
    base_start = min(t for _, t in times[configs[0]])
    print(f"{'workers':>12} | {'sweep s (each repeat)':>22} | {'best':>6} | {'speed-up':>8} | "
          f"{'with start: best':>16} | speed-up")
    for (w, pin), ts in times.items():
        best, best_start = min(t for t, _ in ts), min(t for _, t in ts)
        label = f"{w} {'pinned' if pin else 'unpinned'}"
        print(f"{label:>12} | {', '.join(f'{t:.1f}' for t, _ in ts):>22} | {best:6.1f} | {base / best:7.2f}x | "
              f"{best_start:16.1f} | {base_start / best_start:.2f}x")


if __name__ == "__main__":
    main()
