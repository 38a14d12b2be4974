"""The theory engine at scale: the old solver and route vs the new ones, in one run (issue "Theory engine at scale").

Problem: random query/key heads (G = 8), N0 = 32, 12 tokens, mean readout, T = 0.01, N = 10, labels from a fixed
teacher on the inputs: 'tokens' reads two token statistics (plus noise); 'paths' is linear in the path features of
three paths with correlated weights (plus a little noise), the hard case, where U moves far from the GP point.
Every cell runs in a fresh subprocess (so peak memory is its own), from the GP point (cold).

* old: the solver of commit 3b9833b (`legacy_solver.py`: Newton on Cholesky coordinates, |eigenvalue| Hessian,
  Armijo search, P x P factorisations at every trial point) on path features held in memory;
* new: `solve_saddle` with the automatic route (Gram statistics accumulated from x in chunks when P > N0 H) and
  method (dense trust region up to 64 paths, Krylov trust region above).

Columns: s/it (seconds per iteration), it (iterations), total (seconds: statistics or features + solve,
compilation included, persistent cache cold on the first run), peak (MB, the process's maximum resident
memory; x itself is 8 P N0 T bytes), |dS|/S (relative action difference old vs new where both run). The old-vs-new
tables use the first --teacher; a last table reports every many-path cell (64 = 8 x 8 and 256 = 16 x 16 paths) for
every teacher: Newton iterations, Hessian-vector products (krylov, certificate included), converged, certified
(smallest Hessian eigenvalue > 0), seconds and the action.

    python benchmarks/scale.py                 # the full table (about an hour on 2 cores)
    python benchmarks/scale.py --quick         # P <= 10^4 and the special cases
    python benchmarks/scale.py --cells 100000x4 1000000x4
    python benchmarks/scale.py --many-paths    # only the many-path table at P = 600, both teachers
    python benchmarks/scale.py --many-paths --cells 600x64 --teacher paths --new-timeout 400
    python benchmarks/scale.py --many-paths --cells 600x64 --methods dense krylov   # old step vs new, one run
    python benchmarks/scale.py --many-paths --cells 600x64 --against 620d5bd        # another commit's solver too
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

N0, TOKENS, G = 32, 12, 8
HEADS = {4: (2, 2), 16: (4, 4), 64: (8, 8), 256: (16, 16)}
ONESHOT_T = (0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)


TEACHERS = ("tokens", "paths")


def problem(P, heads, n0=N0, tokens=TOKENS, g=G, seed=0, teacher="tokens"):
    """Random QK heads and inputs; labels from a teacher (the inputs x do not depend on the teacher).

    teacher 'tokens': the sign of a linear function of two token statistics of x, plus noise (std 0.5 of the
    signal's); 'paths': the sign of a linear function of the path features of a few paths whose weights are
    correlated, plus a little noise (`path_teacher`), the situation that moves U far from the GP point.
    """
    import numpy as np

    import attnpaths as ap

    if teacher not in TEACHERS:
        raise ValueError(f"teacher must be one of {TEACHERS}; got {teacher!r}")
    rng = np.random.default_rng(seed)
    attention = [ap.QKHeads(rng.normal(size=(h, g, n0)) * 2 / math.sqrt(n0),
                            rng.normal(size=(h, g, n0)) * 2 / math.sqrt(n0)) for h in heads]
    x = np.empty((P, n0, tokens))
    u, u2 = rng.normal(size=n0), rng.normal(size=n0)
    y = np.empty(P)
    for start in range(0, P, 100_000):  # x is the only O(P) array
        stop = min(start + 100_000, P)
        x[start:stop] = rng.normal(size=(stop - start, n0, tokens))
        f = x[start:stop].mean(-1) @ u + 0.5 * x[start:stop, :, -1] @ u2
        y[start:stop] = np.sign(f + 0.5 * f.std() * rng.normal(size=stop - start))
    if teacher == "paths":
        spec = ap.NetworkSpec(heads=tuple(heads), readout="mean")
        y = path_teacher(spec, attention, x, np.random.default_rng(seed + 1))
    return attention, x, y


def path_teacher(spec, attention, x, rng, n_signal=3, correlation=0.8, noise=0.1):
    """Labels sign(sum_{h in signal} w_h . xi_h + noise): `n_signal` random paths carry the signal, their weight
    vectors w_h (N0,) have pairwise correlation `correlation`, the noise's std is `noise` times the signal's.

    Path features are computed in chunks of at most ~128 MB, so P = 10^6 with 256 paths fits in memory.
    """
    import numpy as np

    import attnpaths as ap

    P, n0, _ = x.shape
    H = spec.n_paths
    signal = rng.choice(H, size=min(n_signal, H), replace=False)
    w = (math.sqrt(correlation) * rng.normal(size=n0)[None, :]
         + math.sqrt(1 - correlation) * rng.normal(size=(len(signal), n0)))
    chunk = max(1, 2 ** 24 // (n0 * H))
    f = np.empty(P)
    for start in range(0, P, chunk):
        xi = np.asarray(ap.path_features(spec, attention, x[start:start + chunk]))
        f[start:start + chunk] = np.einsum("pnh,hn->p", xi[:, :, signal], w)
    return np.sign(f + noise * f.std() * rng.normal(size=P))


def run_cell(P, paths, solver, T=0.01, N=10.0, n0=N0, tokens=TOKENS, g=G, random_labels=False, teacher="tokens",
             method="auto"):
    import numpy as np

    import attnpaths as ap

    heads = HEADS[paths] if paths in HEADS else tuple(int(h) for h in str(paths).split("x"))
    spec = ap.NetworkSpec(heads=heads, widths=N, temperature=T, readout="mean")
    attention, x, y = problem(P, heads, n0, tokens, g, teacher=teacher)
    if random_labels:
        y = np.sign(np.random.default_rng(1).normal(size=P))
    t0 = time.perf_counter()
    iterations = []
    callback = lambda i, S, gm: iterations.append(time.perf_counter())  # noqa: E731
    if solver == "old":
        sys.path.insert(0, os.path.dirname(__file__))
        from legacy_solver import solve_saddle as legacy

        xi = ap.path_features(spec, attention, x)
        t1 = time.perf_counter()
        s = legacy(spec, xi, y, raise_on_failure=False, max_iter=400, callback=callback)
        extra = {}
    else:
        if P > n0 * spec.n_paths:
            data = ap.gram_statistics(spec, attention, x, y)
        else:
            data = ap.training_data(spec, ap.path_features(spec, attention, x), y)
        t1 = time.perf_counter()
        s = ap.solve_saddle(spec, data, raise_on_failure=False, max_iter=200, callback=callback, method=method)
        extra = {"route": s.route, "method": s.method, "products": s.hessian_products,
                 "certified": bool(s.min_hessian_eigenvalue > 0)}
    t2 = time.perf_counter()
    steps = np.diff([t1] + iterations) if iterations else np.array([t2 - t1])
    return dict(P=P, paths=paths, solver=solver, teacher=teacher, T=T, N=N, iterations=s.iterations,
                converged=bool(s.converged),
                action=s.action, grad_max=s.grad_max, min_eig=s.min_hessian_eigenvalue,
                setup_s=t1 - t0, solve_s=t2 - t1, total_s=t2 - t0, s_per_it=float(np.median(steps)),
                peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, x_mb=x.nbytes / 2 ** 20,
                **extra)


def spawn(cell: dict, timeout: float, memo: dict, src: str | None = None) -> dict:
    """Run one cell in a fresh subprocess; `memo` (cell -> result) lets a later table reuse a run. `src`: the
    package directory of another revision (`checkout`), put first on the subprocess's path."""
    key = json.dumps(dict(cell, src=src), sort_keys=True)
    if key in memo:
        return memo[key]
    cmd = [sys.executable, __file__, "--cell", json.dumps(cell)]
    env = dict(os.environ, PYTHONPATH=src) if src else None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        result = dict(cell, error=f"> {timeout:.0f} s")
    else:
        result = (json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else
                  dict(cell, error=(out.stderr.strip().splitlines() or ["failed"])[-1][:60]))
    memo[key] = result
    return result


def fmt(r: dict | None, key: str, spec: str) -> str:
    if r is None:
        return "—"
    if "error" in r:
        return r["error"] if key == "total_s" else ""
    return format(r[key], spec)


def table(rows):
    print("| case | old s/it | old it | old total | new s/it | new it | new total | new route/method | "
          "old peak MB | new peak MB | x MB | new converged | abs(dS)/S |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, old, new in rows:
        diff = "—"
        if old and new and "error" not in old and "error" not in new:
            diff = f"{abs(old['action'] - new['action']) / abs(new['action']):.1e}"
        how = f"{new.get('route', '')}/{new.get('method', '')}" if new and "error" not in new else ""
        conv = ("yes" if new["converged"] else "NO") if new and "error" not in new else ""
        print(f"| {name} | {fmt(old, 's_per_it', '.3g')} | {fmt(old, 'iterations', 'd')} | "
              f"{fmt(old, 'total_s', '.1f')} | {fmt(new, 's_per_it', '.3g')} | {fmt(new, 'iterations', 'd')} | "
              f"{fmt(new, 'total_s', '.1f')} | {how} | {fmt(old, 'peak_mb', '.0f')} | {fmt(new, 'peak_mb', '.0f')} | "
              f"{fmt(new, 'x_mb', '.0f')} | {conv} | {diff} |", flush=True)


def many_path_table(cells, teachers, timeout, memo, methods=("auto",), against: str | None = None):
    """Every many-path cell for every teacher and solver method, new solver, cold: what the solver did, whether
    it certified, and (from the second method on) |dS|/S against the first method's action. `against`: a git
    revision whose solver runs each row too (its seconds, the ratio, |dS|/S against it), in the same run."""
    base = checkout(against) if against else None
    print(_machine("before"))
    extra = f" {against} it | {against} solve s | speed-up | abs(dS)/S vs {against} |" if against else ""
    print("| case | teacher | method | Newton it | HVPs | converged | certified | solve s | total s | action | "
          "route/method | abs(dS)/S |" + extra + "\n|---|---|---|---|---|---|---|---|---|---|---|---|"
          + "---|---|---|---|" * bool(against))
    for name, cell in cells:
        for teacher in teachers:
            first = None
            for method in methods:
                run = dict(cell, solver="new", teacher=teacher, method=method)
                old = spawn(run, timeout, memo, base) if base else None
                r = spawn(run, timeout, memo)
                if "error" in r:
                    print(f"| {name} | {teacher} | {method} | | | | | | {r['error']} | | | |", flush=True)
                    continue
                first = first or r
                diff = ("—" if r is first else f"{abs(r['action'] - first['action']) / abs(first['action']):.1e}")
                line = (f"| {name} | {teacher} | {method} | {r['iterations']} | {r['products']} | "
                        f"{'yes' if r['converged'] else 'NO'} | {'yes' if r['certified'] else 'NO'} | "
                        f"{r['solve_s']:.1f} | {r['total_s']:.1f} | {r['action']:.15g} | {r['route']}/{r['method']} | "
                        f"{diff} |")
                if old is not None and "error" in old:
                    line += f" | {old['error']} | | |"
                elif old is not None:
                    line += (f" {old['iterations']} | {old['solve_s']:.1f} | {old['solve_s'] / r['solve_s']:.2f}x | "
                             f"{abs(old['action'] - r['action']) / abs(r['action']):.1e} |")
                print(line, flush=True)
    print(_machine("after"))


def _machine(when: str) -> str:
    """The machine's speed at that moment (it drifts by up to 1.5x within minutes on the shared 2-core CPU)."""
    from profile_step import matmul_rates

    np_rate, jax_rate, _ = matmul_rates()
    return (f"machine {when} the table: float64 2000 x 2000 matmul {np_rate:.1f} GFLOP/s (numpy), {jax_rate:.1f} "
            f"(jax); load average {os.getloadavg()[0]:.1f}")


def checkout(rev: str) -> str:
    """The `src` directory of a detached worktree of this repository at `rev` (removed when the process ends)."""
    import atexit
    import shutil
    import tempfile

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parent = tempfile.mkdtemp(prefix="attnpaths-baseline-")
    where = os.path.join(parent, "tree")
    made = subprocess.run(["git", "-C", repo, "worktree", "add", "--detach", where, rev], capture_output=True,
                          text=True)
    if made.returncode != 0:
        shutil.rmtree(parent, ignore_errors=True)
        raise SystemExit(f"--against {rev}: git could not check it out: {made.stderr.strip()}")

    def remove():
        subprocess.run(["git", "-C", repo, "worktree", "remove", "--force", where], capture_output=True)
        shutil.rmtree(parent, ignore_errors=True)

    atexit.register(remove)
    return os.path.join(where, "src")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cell", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="P <= 10^4 and the special cases only")
    parser.add_argument("--cells", nargs="*", help="PxPATHS cells of the grid to run (default: all)")
    parser.add_argument("--old-timeout", type=float, default=600.0, help="seconds allowed per old-solver cell")
    parser.add_argument("--new-timeout", type=float, default=1800.0, help="seconds allowed per new-solver cell")
    parser.add_argument("--no-special", action="store_true", help="skip the one-shot-size and hard cases")
    parser.add_argument("--teacher", nargs="+", choices=TEACHERS, default=list(TEACHERS),
                        help="label teachers: the old-vs-new tables use the first, the many-path table every one")
    parser.add_argument("--many-paths", action="store_true",
                        help="only the many-path table at P = 600 (64 = 8x8 and 256 = 16x16 paths)")
    parser.add_argument("--methods", nargs="+", choices=("auto", "dense", "krylov"), default=["auto"],
                        help="solver methods of the many-path table, e.g. --methods dense krylov: the old dense "
                             "Newton step and the preconditioned Krylov step side by side")
    parser.add_argument("--against", metavar="REV",
                        help="also run every many-path row with the solver of git revision REV (e.g. a commit "
                             "before a change), side by side in the same run")
    parser.add_argument("--old-t-grid", nargs="*", type=float, default=list(ONESHOT_T),
                        help="temperatures of the one-shot T grid at which the old solver runs too (default: all)")
    args = parser.parse_args()
    if args.cell:
        print(json.dumps(run_cell(**json.loads(args.cell))))
        return
    teacher, memo = args.teacher[0], {}
    many = [("64 paths 8x8, P=600", dict(P=600, paths=64)), ("256 paths 16x16, P=600", dict(P=600, paths=256))]
    if args.many_paths:
        if args.cells is not None:
            many = [(f"P={c.split('x')[0]}, {c.split('x')[1]} paths", dict(P=int(c.split("x")[0]),
                                                                            paths=int(c.split("x")[1])))
                    for c in args.cells]
        many_path_table(many, args.teacher, args.new_timeout, memo, args.methods, args.against)
        return
    grid = [(P, paths) for P in (10 ** 3, 10 ** 4, 10 ** 5, 10 ** 6) for paths in (4, 16, 64, 256)]
    if args.quick:
        grid = [(P, h) for P, h in grid if P <= 10 ** 4]
    if args.cells is not None:
        grid = [tuple(int(v) for v in c.split("x")) for c in args.cells]
    rows = []
    for P, paths in grid:
        D = N0 * paths
        feasible_new = P * D * D <= 7e12  # the Gram statistics' P D^2 flops (10^6 x 256 paths: ~2 h here)
        old_ok = P <= 10 ** 4 and paths <= 64 and P * P * N0 * paths <= 1e11
        cell = dict(P=P, paths=paths, teacher=teacher)
        old = spawn(dict(cell, solver="old"), args.old_timeout, memo) if old_ok else None
        new = (spawn(dict(cell, solver="new"), args.new_timeout, memo) if feasible_new
               else dict(cell, error="skipped: P D^2 > 7e12"))
        rows.append((f"P={P:.0e}, {paths} paths", old, new))
        if paths >= 64 and feasible_new:
            many.append((f"P={P:.0e}, {paths} paths", dict(P=P, paths=paths)))
        table(rows[-1:]) if len(rows) > 1 else table(rows)
    if not args.no_special:
        special = [("16 paths 2x8, P=600, random labels", dict(P=600, paths="2x8", random_labels=True)),
                   ("64 paths 8x8, P=600", dict(P=600, paths=64)),
                   ("256 paths 16x16, P=600", dict(P=600, paths=256)),
                   ("one-shot size 4x4, N0=192, 48 tok, P=600", dict(P=600, paths=16, n0=192, tokens=48, g=128))]
        print()
        for name, cell in special:
            cell = dict(cell, teacher=teacher)
            old = spawn(dict(cell, solver="old"), args.old_timeout, memo) if cell["paths"] != 256 else None
            table([(name, old, spawn(dict(cell, solver="new"), args.new_timeout, memo))])
        print("\none-shot size (16 paths, N0 = 192, 48 tokens, P = 600, N = 10), cold solves over the T grid:")
        print("| T | old it | old s | new it | new s | new converged | abs(dS)/S |\n|---|---|---|---|---|---|---|")
        for T in ONESHOT_T:
            cell = dict(P=600, paths=16, n0=192, tokens=48, g=128, T=T, teacher=teacher)
            old = spawn(dict(cell, solver="old"), args.old_timeout, memo) if T in args.old_t_grid else None
            new = spawn(dict(cell, solver="new"), args.new_timeout, memo)
            diff = (f"{abs(old['action'] - new['action']) / abs(new['action']):.1e}"
                    if old and "error" not in old and "error" not in new else "—")
            print(f"| {T} | {fmt(old, 'iterations', 'd')} | {fmt(old, 'total_s', '.1f')} | "
                  f"{fmt(new, 'iterations', 'd')} | {fmt(new, 'total_s', '.1f')} | "
                  f"{'yes' if new.get('converged') else 'NO'} | {diff} |", flush=True)
    print(f"\nmany-path cells, every teacher ({', '.join(args.teacher)}), new solver, cold:")
    many_path_table(many, args.teacher, args.new_timeout, memo, args.methods, args.against)


if __name__ == "__main__":
    main()
