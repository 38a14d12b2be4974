"""`attnpaths sweep` on 1 vs 2 single-threaded LocalCluster workers, in one run (speed-up = ratio of wall times).

Each timed sweep runs the same Markov grid into a fresh store: N (5 widths, warm-started) x T (4) x training
set (2), P = 1000 (the Gram route), 500 test sequences: 40 cells, 2 problems. For every worker count a
LocalCluster is started (one thread per worker, `THREAD_ENV`) and warmed up with a small sweep (imports,
compilation), so the timed sweeps measure the sweep itself; "with start" adds the cluster's start and warm-up,
as a user of `attnpaths sweep` sees it for this grid. 1 and 2 workers alternate `--repeats` times. The machine's
load average is printed: on a shared machine other processes take cores from the workers.

    python benchmarks/sweep.py               # 1 vs 2 workers, 2 repeats
    python benchmarks/sweep.py --repeats 1 --workers 1 2 4
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from attnpaths.experiments.sweep import run_sweep, start_client
from attnpaths.experiments.sweep_grid import Grid

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


def timed(grid: Grid, workers: int, root: Path) -> tuple[float, float]:
    """(seconds of the sweep on a warm cluster, seconds including the cluster's start and warm-up)."""
    t0 = time.perf_counter()
    client = start_client(workers=workers)
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
    args = parser.parse_args()
    grid = Grid.from_dict(GRID)
    print(f"grid: {grid.size} cells, cores available {len(os.sched_getaffinity(0))}, load average before "
          f"{os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        times: dict[int, list[tuple[float, float]]] = {w: [] for w in args.workers}
        for _ in range(args.repeats):
            for w in args.workers:
                times[w].append(timed(grid, w, root))
                print(f"  {w} worker(s): {times[w][-1][0]:.1f} s ({times[w][-1][1]:.1f} s with start), load "
                      f"average {os.getloadavg()[0]:.1f}", flush=True)
    base = min(t for t, _ in times[args.workers[0]])
    base_start = min(t for _, t in times[args.workers[0]])
    print(f"{'workers':>7} | {'sweep s (each repeat)':>22} | {'best':>6} | {'speed-up':>8} | {'with start: best':>16} | "
          f"speed-up")
    for w, ts in times.items():
        best, best_start = min(t for t, _ in ts), min(t for _, t in ts)
        print(f"{w:>7} | {', '.join(f'{t:.1f}' for t, _ in ts):>22} | {best:6.1f} | {base / best:7.2f}x | "
              f"{best_start:16.1f} | {base_start / best_start:.2f}x")


if __name__ == "__main__":
    main()
