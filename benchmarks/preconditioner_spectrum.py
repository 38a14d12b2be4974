"""How well level 1's Hessian block is preconditioned: the Krylov method's diagonal against a Kronecker-structured
candidate (issue 18, the lever left for fewer Hessian-vector products at many paths).

The Krylov method (`krylov.py`) preconditions level 1's block of the whitened Hessian with its diagonal. CG's
product count grows like the square root of the condition number of the preconditioned matrix, so this script
prints, at the GP point and at the minimum of `scale.py`'s problem (P = 600, N0 = 32, N = 10, T = 0.01), the
spectrum of level 1's block H11 (n1 = H(H+1)/2 coordinates) as it is, scaled by the diagonal preconditioner, and
scaled by two Kronecker candidates built from the nearest Kronecker product of the whitened M ~ A (x) B (Van
Loan and Pitsianis: the leading singular pair of M rearranged as (H^2, N0^2)):

  K(X) = (C X + X C) / 2 + s0^2 (A X G + G X A - tau A X A) / N_max,   G = v B v^T,  tau = Tr(B^2),

with C level 1's entropic curvature (`krylov.Curvature`) and v the whitened v: the energy's Hessian-vector
product (`action.energy_hvp`) with M replaced by A (x) B. Candidates: abs(K) with the exact leading pair (K's
eigenvalues made positive, dense, as a reference: not cheap), and the solver's Kronecker form, K's diagonal in A's
eigenbasis with A (x) B from `krylov.KRONECKER_ITERATIONS` power-method updates (X -> Q^T X Q, then a diagonal
scaling: O(H^3) per application; `krylov.krylov_parts(..., kronecker=True)`, which the solver uses after its first
interior step). The dense Hessian is formed, so this is for up to 64 paths.

    python benchmarks/preconditioner_spectrum.py                 # 8 x 8 heads, token teacher (~1 min)
    python benchmarks/preconditioner_spectrum.py --paths 4x4 --teacher paths
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))


def _spectrum(matrix: np.ndarray) -> tuple[float, float]:
    values = np.linalg.eigvalsh(0.5 * (matrix + matrix.T))
    return float(values[0]), float(values[-1])


def _packed_operator(fn, H: int) -> np.ndarray:
    """The (n1, n1) matrix of X -> fn(X) on symmetric X in the solver's packed whitened coordinates."""
    import jax.numpy as jnp

    from attnpaths._src.whitened import _n_tri, _pack_scaled, _unpack_scaled

    columns = []
    for e in np.eye(_n_tri(H)):
        X = np.asarray(_unpack_scaled(jnp.asarray(e), [H])[0])
        columns.append(np.asarray(_pack_scaled(jnp.asarray(fn(X)))))
    return np.stack(columns, axis=1)


def rows_at(spec, data, Us) -> tuple[list[tuple[str, float, float]], float]:
    """[(preconditioner, lowest, highest eigenvalue of the scaled H11)] at the point Us, and the share of the
    whitened M's squared norm in its nearest Kronecker product."""
    import jax.numpy as jnp

    from attnpaths._src import krylov, saddle
    from attnpaths._src.action import whiten_factors, with_M
    from attnpaths._src.whitened import _n_tri, rotate_packed

    hyper, heads = spec.hyper(), spec.heads
    H = spec.n_paths
    n1 = _n_tri(H)
    model = saddle._model(list(Us), data, hyper, heads, True, True)
    H11 = np.asarray(model.hess)[:n1, :n1]
    scale, curvature, _ = krylov.krylov_parts(model.Ls, model.factors, hyper, heads)
    d = np.sqrt(scale.D)
    rows = [("none (whitened coordinates)", *_spectrum(H11)),
            ("diagonal (the solver's)", *_spectrum(H11 / np.outer(d, d)))]
    f = whiten_factors(with_M(model.factors), model.Ls[0])
    M = np.asarray(f.M)
    n0 = M.shape[1]
    u, sv, vt = np.linalg.svd(np.transpose(M, (0, 2, 1, 3)).reshape(H * H, n0 * n0), full_matrices=False)
    A, B = (sv[0] * u[:, 0]).reshape(H, H), vt[0].reshape(n0, n0)
    if np.trace(A) < 0:
        A, B = -A, -B
    v = np.asarray(f.v)
    G, tau = v @ B @ v.T, float(np.trace(B @ B))
    C = np.asarray(curvature.C)  # normalised by N_max, as the Hessian
    norm, s0 = float(jnp.max(hyper.widths)), float(hyper.variances[0])
    K = _packed_operator(lambda X: s0 ** 2 * (A @ X @ G + G @ X @ A - tau * A @ X @ A) / norm
                         + 0.5 * (C @ X + X @ C), H)
    w, V = np.linalg.eigh(0.5 * (K + K.T))
    w = np.maximum(np.abs(w), 1e-3 * np.max(np.abs(w)))
    root = V @ np.diag(w ** -0.5) @ V.T
    rows.append(("Kronecker, abs(K) (dense reference)", *_spectrum(root @ H11 @ root)))
    # the solver's Kronecker form: R^T diag(D) R, R x = pack(Q^T X Q) (`krylov_parts(..., kronecker=True)`)
    kron = krylov.preconditioner(model.Ls, model.factors, hyper, heads, kronecker=True)
    R = np.asarray(rotate_packed(jnp.asarray(kron.Q), jnp.eye(n1))).T
    root = R.T @ (R / np.sqrt(kron.D)[:, None])
    rows.append((f"Kronecker form (the solver's: {krylov.KRONECKER_ITERATIONS} updates, floored)",
                 *_spectrum(root @ H11 @ root)))
    share = sv[0] ** 2 / np.sum(sv ** 2)
    return rows, share


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paths", default="8x8", help="heads per layer, e.g. 8x8 (64 paths) or 4x4")
    parser.add_argument("--teacher", choices=("tokens", "paths"), default="tokens")
    args = parser.parse_args()

    import jax.numpy as jnp
    from scale import problem

    import attnpaths as ap
    from attnpaths._src.order import gp_order

    heads = tuple(int(h) for h in args.paths.split("x"))
    spec = ap.NetworkSpec(heads=heads, widths=10.0, temperature=0.01, readout="mean")
    attention, x, y = problem(600, heads, teacher=args.teacher)
    data = ap.training_data(spec, ap.path_features(spec, attention, x), y)
    solved = ap.solve_saddle(spec, data)
    print(f"{spec.n_paths} paths {args.paths}, teacher {args.teacher}, P = 600, N0 = {x.shape[1]}, N = 10, T = 0.01: "
          f"level 1's block H11 of the whitened Hessian, scaled by each preconditioner")
    print("\n| point | preconditioner | lowest | highest | highest / lowest |")
    print("|---|---|---|---|---|")
    for point, Us in (("GP", gp_order(spec)), ("minimum", solved.U)):
        rows, share = rows_at(spec, data, [jnp.asarray(U) for U in Us])
        for name, lo, hi in rows:
            ratio = f"{hi / lo:.1f}" if lo > 0 else "indefinite"
            print(f"| {point} | {name} | {lo:.3g} | {hi:.3g} | {ratio} |")
        print(f"| {point} | (the nearest Kronecker product holds {100 * share:.1f} % of the whitened M's squared "
              f"norm) | | | |")


if __name__ == "__main__":
    main()
