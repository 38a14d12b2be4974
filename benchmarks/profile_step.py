"""Where a dense Newton step's time goes, against its flop count and the machine's matmul rate (issue 18, item 2).

In one process: (1) the machine's dense float64 matmul rate, numpy and jax, 2000 x 2000 (2 n^3 flops, best of
5); (2) a cold `solve_saddle` at 64 paths (8 x 8), P = 600, N0 = 32, N = 10, T = 0.01 (`scale.py`'s problem),
compiled once by a warm-up solve, then run again with every jitted piece of the solver (and its trust-region
subproblem solvers) timed as the solver calls it. Each piece's flops are XLA's own count of its compiled
executable (`cost_analysis`; LAPACK calls such as Cholesky and eigh are not counted there), the subproblem's
eigen-decomposition is given its textbook count (9 n^3 with eigenvectors, Golub and Van Loan) and the
certificate's eigvalsh 4/3 n^3. "x flops" is a piece's seconds over the seconds its flops would take at the
machine's jax matmul rate: 1 = at the limit, the issue's target is <= 2.

Pieces are found, not named: every jitted module-level function of attnpaths' solver modules and every
function whose name contains "step" (the subproblem solvers) is wrapped, wherever a module refers to it, so the
profile survives a reorganisation of the solver. Times are inclusive (a piece that calls another piece counts
both) and wall-clock after block_until_ready; cpu s is the process's CPU time (all threads), which a loaded
machine inflates less than the wall time, and "x flops (cpu)" compares it with the matmul's GFLOP per CPU-second
(but BLAS threads that spin while waiting for a core inflate it too: on a shared machine run it also with one
thread, OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 XLA_FLAGS=--xla_cpu_multi_thread_eigen=false).

    python benchmarks/profile_step.py                     # token teacher, 2 Newton steps
    python benchmarks/profile_step.py --teacher paths --steps 3
"""

from __future__ import annotations

import argparse
import collections
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))


def matmul_rates(n: int = 2000, repeats: int = 5) -> tuple[float, float, float]:
    """(numpy, jax) float64 GFLOP/s of an n x n matmul, best of `repeats` by the wall clock, and jax's GFLOP per
    CPU-second (process time, all threads), which a machine shared with other jobs distorts less."""
    import jax
    import jax.numpy as jnp

    import attnpaths  # noqa: F401  (its import turns on float64 in jax: without it, jnp.asarray below is float32)

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(n, n)), rng.normal(size=(n, n))
    best_np = min(_seconds(lambda: a @ b) for _ in range(repeats))
    ja, jb = jnp.asarray(a), jnp.asarray(b)
    mm = jax.jit(jnp.matmul)
    mm(ja, jb).block_until_ready()
    best_jax = min(_seconds(lambda: mm(ja, jb).block_until_ready()) for _ in range(repeats))
    c = time.process_time()
    for _ in range(repeats):
        mm(ja, jb).block_until_ready()
    cpu_jax = (time.process_time() - c) / repeats
    flops = 2.0 * n ** 3
    return flops / best_np / 1e9, flops / best_jax / 1e9, flops / cpu_jax / 1e9


def _both(fn) -> tuple[float, float]:
    """(wall, CPU) seconds of one call."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def _seconds(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


class Pieces:
    """Wraps the solver's pieces; records calls, wall and CPU seconds, and flops per call."""

    def __init__(self):
        self.calls = collections.Counter()
        self.wall = collections.Counter()
        self.cpu = collections.Counter()
        self.flops: dict[str, float] = {}
        self.active = False

    def wrap(self, name, fn, jitted: bool):
        import jax

        def timed(*args, **kwargs):
            if not self.active:
                return fn(*args, **kwargs)
            if jitted and name not in self.flops:
                cost = fn.lower(*args, **kwargs).compile().cost_analysis()
                cost = cost[0] if isinstance(cost, (list, tuple)) else cost
                self.flops[name] = float((cost or {}).get("flops", float("nan")))
            w, c = time.perf_counter(), time.process_time()
            out = jax.block_until_ready(fn(*args, **kwargs))
            self.wall[name] += time.perf_counter() - w
            self.cpu[name] += time.process_time() - c
            self.calls[name] += 1
            return out

        return timed

    def install(self):
        """Replace each piece in every attnpaths module that refers to it."""
        import attnpaths._src.saddle  # noqa: F401  (the solver's modules are loaded before the scan)

        modules = [m for n, m in list(sys.modules.items()) if n.startswith("attnpaths._src") and m is not None]
        solver_modules = [m for m in modules if m.__name__.rsplit(".", 1)[-1] in ("saddle", "trust_region", "krylov",
                                                                                 "routes", "action")]
        targets = {}
        for module in solver_modules:
            for name, obj in vars(module).items():
                jitted = hasattr(obj, "lower") and callable(obj)
                if jitted or (callable(obj) and "step" in name and getattr(obj, "__module__", "") == module.__name__
                              and not name.startswith("step_") and not isinstance(obj, type)):
                    targets[id(obj)] = (name, obj, jitted)
        wrappers = {key: self.wrap(name, obj, jitted) for key, (name, obj, jitted) in targets.items()}
        for module in modules:
            for name, obj in list(vars(module).items()):
                if id(obj) in wrappers and targets[id(obj)][1] is obj:
                    setattr(module, name, wrappers[id(obj)])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", choices=("tokens", "paths"), default="tokens")
    parser.add_argument("--paths", default="8x8", help="heads per layer, e.g. 8x8 (64 paths) or 4x4")
    parser.add_argument("--P", type=int, default=600)
    parser.add_argument("--steps", type=int, default=2, help="Newton iterations to profile (max_iter)")
    args = parser.parse_args()

    import jax
    from scale import problem

    import attnpaths as ap

    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} (1 min) at the start")
    np_rate, jax_rate, jax_cpu_rate = matmul_rates()
    print(f"dense float64 matmul 2000 x 2000: numpy {np_rate:.1f} GFLOP/s, jax {jax_rate:.1f} GFLOP/s "
          f"(wall, best of 5); jax {jax_cpu_rate:.1f} GFLOP per CPU-second")

    heads = tuple(int(h) for h in args.paths.split("x"))
    spec = ap.NetworkSpec(heads=heads, widths=10.0, temperature=0.01, readout="mean")
    attention, x, y = problem(args.P, heads, teacher=args.teacher)
    data = ap.training_data(spec, ap.path_features(spec, attention, x), y)
    pieces = Pieces()
    pieces.install()
    t = time.perf_counter()
    ap.solve_saddle(spec, data, max_iter=1, raise_on_failure=False)  # compiles every piece
    compile_s = time.perf_counter() - t

    pieces.active = True
    marks = []
    t, c = time.perf_counter(), time.process_time()
    s = ap.solve_saddle(spec, data, max_iter=args.steps, raise_on_failure=False,
                        callback=lambda i, S, g: marks.append(time.perf_counter()))
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    n = sum(k * (k + 1) // 2 for k in spec.level_sizes)
    print(f"\n{spec.n_paths} paths {args.paths}, P = {args.P}, N0 = {x.shape[1]}, N = 10, T = 0.01, "
          f"teacher {args.teacher}: {n} coordinates; warm-up solve (max_iter=1, compilation) {compile_s:.1f} s; "
          f"profiled solve (max_iter={args.steps}): {wall:.2f} s wall, {cpu:.2f} s CPU, "
          f"{s.iterations} iterations, method {s.method}, route {s.route}")
    steps = np.diff([t] + marks)
    print("seconds per iteration (callback to callback; the first includes the initial model): "
          + ", ".join(f"{v:.2f}" for v in steps))
    print("\n| piece | calls | wall s/call | cpu s/call | GFLOP/call | GFLOP/s | x flops (wall) | x flops (cpu) |")
    print("|---|---|---|---|---|---|---|---|")
    rows = [(name, pieces.calls[name], pieces.wall[name] / pieces.calls[name], pieces.cpu[name] / pieces.calls[name],
             pieces.flops.get(name, float("nan"))) for name in pieces.calls]
    if s.method == "dense":  # the dense method's LAPACK pieces, timed alone (the krylov method forms no n x n matrix)
        B = np.random.default_rng(0).normal(size=(n, n))
        B = B + B.T
        eigh_s, eigh_cpu = _both(lambda: np.linalg.eigh(B))
        eigvalsh_s, eigvalsh_cpu = _both(lambda: np.linalg.eigvalsh(B))
        rows += [("eigh (subproblem)", 1, eigh_s, eigh_cpu, 9.0 * n ** 3),
                 ("eigvalsh (certificate)", 1, eigvalsh_s, eigvalsh_cpu, 4.0 / 3.0 * n ** 3)]
    for name, calls, w, cp, fl in sorted(rows, key=lambda r: -r[1] * r[2]):
        rate = fl / w / 1e9 if not math.isnan(fl) else float("nan")
        ratio = w / (fl / (jax_rate * 1e9)) if fl > 0 else float("nan")
        cpu_ratio = cp / (fl / (jax_cpu_rate * 1e9)) if fl > 0 else float("nan")
        print(f"| {name} | {calls} | {w:.3f} | {cp:.3f} | {fl / 1e9:.3g} | {rate:.3g} | {ratio:.3g} | "
              f"{cpu_ratio:.3g} |")
    print("(eigh rows, dense method only: np.linalg on an n x n matrix, timed alone, nominal flops; a piece that "
          "calls another piece includes its time)")


if __name__ == "__main__":
    main()
