"""Trial of a Kronecker-structured level-1 preconditioner for the Krylov method, against the solver's diagonal one,
in one run (issue 18: fewer Hessian-vector products at many paths). Not the library's code: it replaces
`krylov.krylov_parts` in this process only.

The candidate (see `preconditioner_spectrum.py` for its effect on the spectrum): level 1's block of C is
R^T diag(k) R, with R the rotation X -> Q^T X Q of the symmetric coordinates (orthogonal in the packed coordinates),
Q the eigenvectors of A, A (x) B the nearest Kronecker product of the whitened M (8 alternating updates, from W or
M, never forming M from W), and k the diagonal, in that basis, of the energy's Hessian-vector product with M
replaced by A (x) B plus the entropy's (C X + X C)/2, made positive and floored as the diagonal is (scaled by the
exact diagonal's mean, so that the trust radius keeps its meaning). The levels above keep their exact coupling and
Schur complement. The hybrid side uses the diagonal until the first interior Steihaug step (away from the minimum,
where the Hessian may be indefinite, the Kronecker form scales level 1's block worse) and the Kronecker form after.

Each side runs in a fresh subprocess: `scale.py`'s problem, method 'krylov', cold, P = 600, N = 10, T = 0.01;
per side Newton steps, products, seconds, the action, and per Steihaug step (radius, products, on the boundary).

    python benchmarks/kronecker_trial.py --paths 8x8          # ~2 min
    python benchmarks/kronecker_trial.py --paths 16x16        # ~9 min
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))


SIDES = ("diagonal", "kronecker", "hybrid")


def side(preconditioner: str, paths: str, teacher: str) -> dict:
    import jax
    import jax.numpy as jnp
    from preconditioner_spectrum import kronecker_scaling
    from scale import problem

    import attnpaths as ap
    from attnpaths._src import krylov, saddle
    from attnpaths._src.action import whiten_factors
    from attnpaths._src.whitened import _pack_scaled, _unpack_scaled

    heads = tuple(int(h) for h in paths.split("x"))
    spec = ap.NetworkSpec(heads=heads, widths=10.0, temperature=0.01, readout="mean")
    attention, x, y = problem(600, heads, teacher=teacher)
    data = ap.training_data(spec, ap.path_features(spec, attention, x), y)
    H = spec.n_paths
    rows_i, cols_i = np.triu_indices(H)
    sc = np.where(rows_i == cols_i, 1.0, 1.0 / math.sqrt(2.0))

    def unpack(x):
        U = np.zeros((H, H))
        U[rows_i, cols_i] = x * sc
        return U + U.T - np.diag(np.diag(U))

    def pack(X):
        return X[rows_i, cols_i] / sc

    # numpy twins of whitened._unpack_scaled / _pack_scaled (the trial's preconditioner runs on the host at every
    # CG iteration), checked against them once
    x = np.random.default_rng(0).normal(size=rows_i.size)
    assert np.allclose(unpack(x), np.asarray(_unpack_scaled(jnp.asarray(x), [H])[0]), rtol=1e-15, atol=0)
    assert np.allclose(pack(unpack(x)), np.asarray(_pack_scaled(jnp.asarray(unpack(x)))), rtol=1e-15, atol=0)

    class KronPre:
        """`krylov.Preconditioner`'s interface with level 1's block R^T diag(k) R."""

        def __init__(self, Q, k, B, V, s):
            self.Q, self.D, self.B, self.V, self.s = Q, k, B, V, s

        def _c1(self, r, power):  # C1^power r for r (n1,) or (n1, m)
            if r.ndim == 2:
                return np.stack([self._c1(c, power) for c in r.T], 1)
            rotated = pack(self.Q.T @ unpack(r) @ self.Q) * self.D ** power
            return pack(self.Q @ unpack(rotated) @ self.Q.T)

        def _root(self, u):
            return self.V @ ((self.V.T @ u) / np.sqrt(self.s))

        def solve(self, r):
            n1 = len(self.D)
            r1, r2 = r[:n1], r[n1:]
            z2 = self.V @ ((self.V.T @ (r2 - self.B.T @ self._c1(r1, -1))) / self.s)
            return np.concatenate([self._c1(r1 - self.B @ z2, -1), z2])

        def inverse_factor(self, w, transpose):
            n1 = len(self.D)
            w1, w2 = w[:n1], w[n1:]
            if transpose:
                z2 = self._root(w2)
                return np.concatenate([self._c1(w1, -0.5) - self._c1(self.B @ z2, -1), z2])
            return np.concatenate([self._c1(w1, -0.5), self._root(w2 - self.B.T @ self._c1(w1, -1))])

    @jax.jit
    def kron_from_M(M):  # the nearest A (x) B, ||B|| = 1: the power method on M rearranged as (H^2, N0^2)
        n0 = M.shape[1]
        B = jnp.eye(n0) / math.sqrt(n0)
        for _ in range(8):
            B = jnp.einsum("ciaj,ca->ij", M, jnp.einsum("ciaj,ij->ca", M, B))
            B = B / jnp.linalg.norm(B)
        return jnp.einsum("ciaj,ij->ca", M, B), B

    @jax.jit
    def kron_from_W(W):  # the same with M = W^T W, never formed
        n0 = W.shape[2]
        B = jnp.eye(n0) / math.sqrt(n0)

        def A_of(B):
            return jnp.einsum("pci,pai->ca", (W.reshape(-1, n0) @ B).reshape(W.shape), W)

        for _ in range(8):
            B = jnp.einsum("pci,pcj->ij", jnp.einsum("ca,pai->pci", A_of(B), W), W)
            B = B / jnp.linalg.norm(B)
        return A_of(B), B

    def kron_parts(Ls, f, hyper, heads_):
        d1, columns, C_1 = krylov._preconditioner_parts(Ls, f, hyper, heads_)
        curvature = krylov.Curvature(C_1, columns) if len(heads_) > 1 else None
        d1, columns = np.asarray(d1), np.asarray(columns)
        n1 = len(d1)
        scale = float(np.mean(np.abs(d1)))
        fw = whiten_factors(f, Ls[0])
        A, B = (kron_from_W(fw.W) if fw.W is not None else kron_from_M(fw.M))
        norm, s0 = float(jnp.max(hyper.widths)), float(hyper.variances[0])
        Q, kd, _ = kronecker_scaling(np.asarray(A), np.asarray(B), np.asarray(fw.v), np.asarray(C_1), s0, norm)
        k = np.maximum(np.abs(kd[rows_i, cols_i]) / scale, krylov._FLOOR)
        Bc, Aup = columns[:, :n1].T / scale, columns[:, n1:] / scale
        pre = KronPre(Q, k, Bc, None, None)
        S = Aup - Bc.T @ pre._c1(Bc, -1) if Bc.shape[1] else Aup
        s, V = np.linalg.eigh(S)
        pre.V, pre.s = V, np.maximum(np.abs(s), krylov._FLOOR)
        return pre, curvature, krylov._product_operands(f)

    diagonal_parts, interior = saddle.krylov_parts, []
    if preconditioner == "kronecker":
        saddle.krylov_parts = kron_parts
    elif preconditioner == "hybrid":  # the diagonal until the first interior Steihaug step, then the Kronecker form
        saddle.krylov_parts = lambda *a: kron_parts(*a) if interior else diagonal_parts(*a)
    log = []
    real_step = saddle.steihaug_step

    def logged(*a, **k):
        out = real_step(*a, **k)
        log.append((round(a[2], 4), out[3], out[2]))
        if not out[2]:
            interior.append(True)
        return out

    saddle.steihaug_step = logged
    t = time.perf_counter()
    s = ap.solve_saddle(spec, data, max_iter=200, raise_on_failure=False, method="krylov")
    return dict(preconditioner=preconditioner, iterations=s.iterations, products=s.hessian_products,
                converged=bool(s.converged), action=s.action, seconds=time.perf_counter() - t, steps=log)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paths", default="8x8", help="heads per layer, e.g. 8x8 (64 paths) or 16x16")
    parser.add_argument("--teacher", choices=("tokens", "paths"), default="tokens")
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(side(args.side, args.paths, args.teacher)))
        return
    rows = []
    for name in SIDES:
        out = subprocess.run([sys.executable, __file__, "--side", name, "--paths", args.paths, "--teacher",
                              args.teacher], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{args.paths} heads, teacher {args.teacher}, P = 600, N0 = 32, N = 10, T = 0.01, method krylov, cold\n")
    print("| preconditioner | Newton it | products | converged | solve s | action |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['preconditioner']} | {r['iterations']} | {r['products']} | {r['converged']} | "
              f"{r['seconds']:.1f} | {r['action']!r} |")
    for r in rows:
        print(f"\n{r['preconditioner']}: (radius, products, on the boundary) per Steihaug step: {r['steps']}")


if __name__ == "__main__":
    main()
