"""The trust-region machinery of the saddle-point solver (`saddle.py`), independent of the action.

Each iteration minimises a quadratic model g.p + p.B p / 2 within ||p|| <= radius: exactly for a dense B, by
Cholesky factorisations of B + mu I from a shift estimated in a Krylov space (`dense_step`, More and Sorensen
1983; Gould, Lucidi, Roma and Toint 1999), or by truncated conjugate gradients on Hessian-vector products
(`steihaug_step`, Nocedal and Wright Alg. 7.2). The step's quality rho, actual over
predicted decrease, then decides whether the step is taken and how the radius changes (Nocedal and Wright,
Alg. 4.1).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import scipy.linalg
import scipy.sparse.linalg

_MAX_RADIUS = 10.0
_SUBSPACE_MAX_STEPS = 80  # Lanczos steps for the secular iteration's start: a few factorisations' cost


# ---- trust-region subproblems ----------------------------------------------------------------------------
def dense_step(g: np.ndarray, B: np.ndarray, radius: float) -> tuple[np.ndarray, float, bool]:
    """argmin g.p + p.B p/2 over ||p|| <= radius (More and Sorensen 1983).

    Cholesky factorisations where they suffice: when B is positive definite the Newton step -B^-1 g; if it
    leaves the region (or B is indefinite), Newton's method on the secular equation (`_cholesky_shift`) from
    the shift of the same subproblem restricted to a Krylov space of B and g (`subspace_shift`, a few dozen
    matrix-vector products), which lies just below the root, so that one factorisation and a last first-order
    update usually finish it. Where that start fails (it factorises no positive definite matrix, or passes the
    root), the secular iteration starts from mu = 0 when B is positive definite and from just above the lowest
    eigenvalue found by Lanczos when it is not. An eigen-decomposition (`eigen_step`, ~9 n^3 flops against
    n^3/3 per factorisation) is the fallback: in the hard case, near it, and for small n.
    Returns (p, predicted reduction, on the boundary)."""
    B = 0.5 * (B + B.T)
    n = g.shape[0]
    factor = _cholesky(B)
    if factor is not None:
        p = -scipy.linalg.cho_solve(factor, g)
        if np.linalg.norm(p) <= radius:
            return p, float(-0.5 * (g @ p)), False
    elif n < _LANCZOS_MIN_SIZE or not np.any(g):  # g = 0: the hard case, with no Krylov space to start from
        return eigen_step(g, B, radius)
    shifted = _from_subspace_shift(B, g, radius) if n >= _LANCZOS_MIN_SIZE else None
    if shifted is None:
        shifted = _from_bound(B, g, radius, factor)
    if shifted is None:  # at or near the hard case (||p(lo)|| < radius), or no convergence
        return eigen_step(g, B, radius)
    p = shifted[0] * (radius / np.linalg.norm(shifted[0]))  # from ||p|| = radius (1 + 1e-12) onto the boundary
    return p, float(-(g @ p + 0.5 * p @ (B @ p))), True


def _from_subspace_shift(B: np.ndarray, g: np.ndarray, radius: float):
    """`_cholesky_shift` from `subspace_shift`'s estimate, or None where that start is not left of the root in
    the region where B + mu I is positive definite (the caller then starts from a bound, `_from_bound`)."""
    mu = subspace_shift(B, g, radius)
    if mu <= 0.0:
        return None
    factor = _cholesky(_shifted(B, mu), overwrite=True)
    return None if factor is None else _cholesky_shift(B, g, radius, mu, factor)


def _from_bound(B: np.ndarray, g: np.ndarray, radius: float, factor):
    """`_cholesky_shift` from a lower bound of the shift: mu = 0 when B is positive definite (`factor` its
    Cholesky factor), else (`factor` None) just above the lowest eigenvalue found by Lanczos; None where that
    fails too (the caller then takes the eigen step)."""
    if factor is not None:
        return _cholesky_shift(B, g, radius, 0.0, factor)
    pair = lowest_eigenpair(B, tol=_LANCZOS_TOL)
    if pair is None:
        return None
    lowest, u = pair
    scale = max(1.0, float(np.max(np.abs(B))))
    # the Ritz value is at most ~tol |lowest| above the eigenvalue, so this shift makes B + lo I positive
    # definite; and ||p(mu)|| >= |g.u| / (lowest + mu) puts the root right of the second bound, a start
    # closer to it than the pole, from which the secular Newton steps would first have to climb
    lo = max(-lowest + 4 * _LANCZOS_TOL * abs(lowest) + 1e-9 * scale, abs(float(g @ u)) / radius - lowest)
    factor = _cholesky(_shifted(B, lo), overwrite=True)
    return None if factor is None else _cholesky_shift(B, g, radius, lo, factor)


def subspace_shift(B: np.ndarray, g: np.ndarray, radius: float, max_steps: int = _SUBSPACE_MAX_STEPS) -> float:
    """The shift mu >= 0 of the trust-region subproblem restricted to the Krylov space K_k(B, g) (Gould, Lucidi,
    Roma and Toint 1999): Lanczos from g, with full reorthogonalisation, tridiagonalises B on the space, and the
    subproblem there is solved in the tridiagonal's eigenbasis (`_eigenbasis_shift`). As k grows the estimate
    rises to the full problem's shift; the iteration stops when five more steps move it by less than 1e-6 of
    the shifted tridiagonal's lowest eigenvalue (the distance to the pole, which sets how far the secular
    iteration's start may be off), on an invariant subspace (then it is exact), or after `max_steps`. 0 when
    the subspace's Newton step is interior. B (n, n) symmetric, g (n,). One product with B per step."""
    n = g.shape[0]
    steps = min(max_steps, n)
    Q, alpha, beta = np.empty((steps, n)), np.empty(steps), np.empty(steps)
    gnorm = float(np.linalg.norm(g))
    q, previous = g / gnorm, None
    for j in range(steps):
        Q[j] = q
        w = B @ q
        alpha[j] = q @ w
        for _ in range(2):  # twice is enough (Giraud et al. 2005): the basis stays orthogonal to rounding
            w -= (Q[: j + 1] @ w) @ Q[: j + 1]
        beta[j] = np.linalg.norm(w)
        invariant = beta[j] <= 1e-12 * float(np.max(np.abs(alpha[: j + 1])))
        if invariant or (j + 1) % 5 == 0 or j + 1 == steps:
            lam, V = scipy.linalg.eigh_tridiagonal(alpha[: j + 1], beta[:j], check_finite=False)
            mu = _eigenbasis_shift(lam, gnorm * V[0], radius)[0]
            if invariant or (previous is not None and abs(mu - previous) <= 1e-6 * (mu + lam[0])):
                return mu
            previous = mu
        q = w / beta[j]
    return mu


_LANCZOS_MIN_SIZE = 64  # below this an eigen-decomposition costs less than Lanczos and a few factorisations
_SECULAR_TOL = 1e-12  # |radius / ||p|| - 1| at which the secular iteration stops
_POLISH_TOL = 1e-5  # below this error the last secular Newton step reuses the factor in hand
_LANCZOS_TOL = 1e-6  # the step needs the lowest eigenvalue only to place the first shift


def _shifted(B: np.ndarray, mu: float) -> np.ndarray:
    A = B.copy()
    A.flat[:: B.shape[0] + 1] += mu
    return A


def _cholesky(A: np.ndarray, overwrite: bool = False):
    """scipy's (upper factor, lower=False) of A, or None when A is not (numerically) positive definite."""
    try:
        return scipy.linalg.cho_factor(A, lower=False, check_finite=False, overwrite_a=overwrite)
    except np.linalg.LinAlgError:
        return None


def lanczos_start(n: int) -> np.ndarray:
    """A fixed start vector for ARPACK (n,). Without one ARPACK draws it from a generator whose state persists in
    the process, so a result would change in its last bits with whatever ran before (a resumed run would differ
    from an uninterrupted one). Pseudo-random, so that it is not orthogonal to an eigenvector of a structured
    matrix."""
    return np.random.default_rng(20241206).standard_normal(n)


def lowest_eigenpair(B: np.ndarray, tol: float = 1e-10) -> tuple[float, np.ndarray] | None:
    """(lowest eigenvalue, its unit eigenvector) of the symmetric B by Lanczos (ARPACK, a few dozen products
    where an eigen-decomposition costs ~9 n^3 flops), or None if it does not converge within 300 restarts
    (a spread, clustered spectrum). The eigenvalue is accurate to about tol |eigenvalue| and, a Ritz value, never
    below the true one."""
    try:
        lam, vec = scipy.sparse.linalg.eigsh(B, k=1, which="SA", tol=tol, maxiter=300, v0=lanczos_start(len(B)))
    except scipy.sparse.linalg.ArpackNoConvergence:
        return None
    return float(lam[0]), vec[:, 0]


def lowest_eigenvalue(B: np.ndarray) -> float:
    """The lowest eigenvalue of the symmetric B to ~1e-12 relative.

    For n >= 64 and B positive definite (its Cholesky factorisation succeeds), by Lanczos on B^-1, whose
    largest eigenvalue is well separated even where B's spectrum is spread (e.g. a minimum's Hessian in packed
    coordinates: ~30 products where Lanczos on B itself took thousands); else, or where it does not converge,
    LAPACK's eigvalsh."""
    factor = _cholesky(B) if B.shape[0] >= _LANCZOS_MIN_SIZE else None
    if factor is not None:
        inverse = scipy.sparse.linalg.LinearOperator(
            B.shape, matvec=lambda v: scipy.linalg.cho_solve(factor, v, check_finite=False), dtype=B.dtype)
        try:
            return 1.0 / float(scipy.sparse.linalg.eigsh(inverse, k=1, which="LA", tol=1e-12, maxiter=300,
                                                         v0=lanczos_start(len(B)), return_eigenvectors=False)[0])
        except scipy.sparse.linalg.ArpackNoConvergence:
            pass
    return float(np.linalg.eigvalsh(B)[0])


def _cholesky_shift(B: np.ndarray, g: np.ndarray, radius: float, mu: float, factor, max_iter: int = 50):
    """Newton's method on phi(mu) = 1/||p(mu)|| - 1/radius, p(mu) = -(B + mu I)^-1 g, from a mu where B + mu I
    is positive definite (its Cholesky factor `factor`) and ||p(mu)|| > radius: phi is concave and increasing
    there, so the iterates rise monotonically to the root and every factorisation succeeds (More and Sorensen
    1983, with R^T R = B + mu I, q = R^-T p: mu += (||p|| / ||q||)^2 (||p|| - radius) / radius).

    Returns (p, mu, factorisations) at |radius / ||p|| - 1| < 1e-12, or, once that error is below `_POLISH_TOL`,
    after a last Newton step that needs no factorisation: p moves to first order with the factor in hand, which
    leaves an error of second order (about the square of the previous one; the caller scales p onto the
    boundary). None when ||p(mu)|| < radius at the start (the hard case is near) or after `max_iter`
    factorisations."""
    for iteration in range(1, max_iter + 1):
        p = -scipy.linalg.cho_solve(factor, g)
        norm = float(np.linalg.norm(p))
        if abs(radius / norm - 1.0) < _SECULAR_TOL:
            return p, mu, iteration
        if norm < radius:
            return None
        q = scipy.linalg.solve_triangular(factor[0], p, trans="T", check_finite=False)
        step = (norm / float(np.linalg.norm(q))) ** 2 * (norm - radius) / radius
        if abs(radius / norm - 1.0) < _POLISH_TOL:
            # dp/dmu = -(B + mu I)^-1 p: p(mu + step) = p - step (B + mu I)^-1 p + O(step^2)
            return p - step * scipy.linalg.cho_solve(factor, p, check_finite=False), mu + step, iteration
        mu = mu + step
        factor = _cholesky(_shifted(B, mu), overwrite=True)
        if factor is None:
            return None
    return None


def eigen_step(g: np.ndarray, B: np.ndarray, radius: float) -> tuple[np.ndarray, float, bool]:
    """`dense_step` from the eigen-decomposition of B, the hard case included (More and Sorensen 1983).

    Returns (p, predicted reduction, on the boundary)."""
    lam, Q = np.linalg.eigh(0.5 * (B + B.T))
    gq = Q.T @ g
    mu, hard = _eigenbasis_shift(lam, gq, radius)
    if mu == 0.0:
        p = -gq / lam
        return Q @ p, float(0.5 * np.sum(gq ** 2 / lam)), False
    p = -gq / (lam + mu)
    if hard:  # g has (almost) no component along the lowest eigenvector
        p[0] = 0.0
        p[0] = math.sqrt(max(radius ** 2 - float(p @ p), 0.0))
    else:
        # ||p|| <= radius; where rounding kept it short (near the hard case) the lowest eigenvector, along which the
        # model is flat at this shift, takes it to the boundary (More and Sorensen 1983)
        p[0] = math.copysign(math.sqrt(max(radius ** 2 - float(p[1:] @ p[1:]), 0.0)), p[0])
    p = Q @ p
    return p, float(-(g @ p + 0.5 * p @ (B @ p))), True


def _eigenbasis_shift(lam: np.ndarray, gq: np.ndarray, radius: float) -> tuple[float, bool]:
    """The subproblem's shift mu in B's eigenbasis (lam ascending, gq = Q^T g), p(mu) = -gq / (lam + mu).

    0 when B is positive definite and the Newton step fits; else the root of ||p(mu)|| = radius right of the pole
    -lam[0] (`_boundary_shift`); in the hard case, where ||p|| <= radius already just right of the pole, that
    point. Returns (mu, hard case)."""
    scale = max(1.0, float(np.max(np.abs(lam))))
    if lam[0] > 1e-14 * scale and np.linalg.norm(gq / lam) <= radius:
        return 0.0, False
    lo = max(0.0, -float(lam[0])) * (1 + 1e-12) + 1e-14 * scale
    if np.linalg.norm(gq / (lam + lo)) <= radius:
        return lo, True
    return _boundary_shift(lam, gq, radius, lo, lo + float(np.linalg.norm(gq)) / radius + scale)[0], False


def _boundary_shift(lam: np.ndarray, gq: np.ndarray, radius: float, lo: float, hi: float) -> tuple[float, int]:
    """The shift mu in (lo, hi) with ||p(mu)|| = radius, p(mu) = -gq / (lam + mu) (eigenbasis of B).

    Newton's method on the secular equation phi(mu) = 1/||p(mu)|| - 1/radius, which is nearly linear in mu, from
    the left end, where it converges monotonically and fast (More and Sorensen 1983); a step that leaves the
    bracket is replaced by bisection. Near the hard case rounding can stop phi short of 0; the search then ends
    when the bracket has shrunk to rounding, at its right end (||p|| <= radius). Returns (mu, iterations)."""
    mu = lo
    for iteration in range(1, 201):
        pm = gq / (lam + mu)
        nm = float(np.linalg.norm(pm))
        phi = 1.0 / nm - 1.0 / radius
        if abs(phi) * radius < 1e-12:
            return mu, iteration
        if phi < 0:
            lo = mu
        else:
            hi = mu
        dphi = float(np.sum(pm ** 2 / (lam + mu))) / nm ** 3
        if hi - lo <= 4 * np.finfo(np.float64).eps * max(abs(lo), abs(hi)):
            return hi, iteration
        mu = mu - phi / dphi
        if not (lo < mu < hi):
            mu = 0.5 * (lo + hi)
    return mu, 200


def steihaug_step(g: np.ndarray, hvp: Callable[[np.ndarray], np.ndarray], radius: float,
                  max_products: int, precondition: Callable[[np.ndarray], np.ndarray] | None = None,
                  floor: float = 0.0) -> tuple[np.ndarray, float, bool, int]:
    """Steihaug-Toint truncated CG on the trust-region subproblem (Nocedal and Wright, Alg. 7.2; preconditioned
    as in Conn, Gould and Toint, Trust-Region Methods, Alg. 7.5.1).

    `precondition(r)` applies C^-1 for a symmetric positive definite C (default the identity); the trust region
    is then ||p||_C = sqrt(p.C p) <= radius, the norm in which the CG iterates grow monotonically, so the
    method keeps its guarantees (a model decrease at least the Cauchy point's in that norm). ||p||_C is
    tracked by recurrences, without C itself. Stops at negative curvature or the boundary, or when
    ||r||_C^-1 <= min(0.1, ||g||_C^-1) ||g||_C^-1 (quadratic forcing: a Newton step costs a new model, more than
    a few CG products), or when ||r||_C^-1 <= `floor` (a residual far below the solver's tolerance buys
    nothing). Returns (p, predicted reduction, on the boundary, Hessian-vector products used)."""
    apply_inv = precondition if precondition is not None else (lambda r: r)
    z = np.zeros_like(g)
    r = g.copy()
    s = apply_inv(r)
    rs = float(r @ s)
    gnorm = math.sqrt(max(rs, 0.0))
    tol = max(min(0.1, gnorm) * gnorm, floor)
    d = -s
    Bz = np.zeros_like(g)
    zz, zd, dd = 0.0, 0.0, rs  # ||z||_C^2, z.C d, ||d||_C^2
    products = 0
    for _ in range(max_products):
        Bd = hvp(d)
        products += 1
        dBd = float(d @ Bd)
        if dBd <= 0 or not math.isfinite(dBd):
            return _to_boundary(g, z, Bz, d, Bd, zz, zd, dd, radius) + (products,)
        alpha = rs / dBd
        zz_next = zz + 2 * alpha * zd + alpha ** 2 * dd
        if zz_next >= radius ** 2:
            return _to_boundary(g, z, Bz, d, Bd, zz, zd, dd, radius) + (products,)
        z, Bz, zz = z + alpha * d, Bz + alpha * Bd, zz_next
        r = r + alpha * Bd
        s = apply_inv(r)
        rs_next = float(r @ s)
        if math.sqrt(max(rs_next, 0.0)) <= tol:
            break
        beta = rs_next / rs
        zd = beta * (zd + alpha * dd)
        dd = rs_next + beta ** 2 * dd
        d = -s + beta * d
        rs = rs_next
    return z, float(-(g @ z + 0.5 * z @ Bz)), False, products


def _to_boundary(g, z, Bz, d, Bd, zz, zd, dd, radius):
    """The point z + tau d, tau >= 0, on the boundary ||.||_C = radius, with its predicted reduction."""
    tau = float((-zd + math.sqrt(max(zd * zd + dd * (radius ** 2 - zz), 0.0))) / dd)
    p, Bp = z + tau * d, Bz + tau * Bd
    return p, float(-(g @ p + 0.5 * p @ Bp)), True


# ---- the trust region's bookkeeping (Nocedal and Wright, Alg. 4.1) -------------------------------------------
_ACCEPT = 1e-4  # a step is taken when it achieves more than this fraction of the model's predicted decrease


def step_quality(S: float, trial: float, predicted: float) -> float:
    """rho = actual / predicted decrease of the action for a step from S to `trial`.

    -1 (reject) when the trial action is not finite or the model predicts no decrease; 1 when the predicted
    decrease is below rounding of S, where the model is exact and the actual difference is noise."""
    if not math.isfinite(trial) or predicted <= 0:
        return -1.0
    if predicted <= 1e3 * np.finfo(np.float64).eps * max(1.0, abs(S)):
        return 1.0
    return (S - trial) / predicted


def step_accepted(rho: float) -> bool:
    """Whether the solver moves to a trial point of step quality rho: when rho > 1e-4."""
    return rho > _ACCEPT


def next_radius(radius: float, rho: float, boundary: bool) -> float:
    """The trust radius after a step of quality rho: x1/4 below rho = 1/4, x2 (capped at 10) above rho = 3/4
    when the step reached the boundary, unchanged otherwise."""
    if rho < 0.25:
        return 0.25 * radius
    if rho > 0.75 and boundary:
        return min(2.0 * radius, _MAX_RADIUS)
    return radius
