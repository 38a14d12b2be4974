"""The trust-region machinery of the saddle-point solver (`saddle.py`), independent of the action.

Each iteration minimises a quadratic model g.p + p.B p / 2 within ||p|| <= radius: exactly from the
eigen-decomposition of a dense B (`dense_step`, More and Sorensen 1983), or by truncated conjugate gradients on
Hessian-vector products (`steihaug_step`, Nocedal and Wright Alg. 7.2). The step's quality rho, actual over
predicted decrease, then decides whether the step is taken and how the radius changes (Nocedal and Wright,
Alg. 4.1).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

_MAX_RADIUS = 10.0


# ---- trust-region subproblems ----------------------------------------------------------------------------
def dense_step(g: np.ndarray, B: np.ndarray, radius: float) -> tuple[np.ndarray, float, bool]:
    """argmin g.p + p.B p/2 over ||p|| <= radius, from the eigen-decomposition of B (More-Sorensen).

    Returns (p, predicted reduction, on the boundary)."""
    lam, Q = np.linalg.eigh(0.5 * (B + B.T))
    gq = Q.T @ g
    scale = max(1.0, float(np.max(np.abs(lam))))
    if lam[0] > 1e-14 * scale:
        p = -gq / lam
        if np.linalg.norm(p) <= radius:
            return Q @ p, float(0.5 * np.sum(gq ** 2 / lam)), False
    lo = max(0.0, -float(lam[0])) * (1 + 1e-12) + 1e-14 * scale

    def norm(mu):
        return float(np.linalg.norm(gq / (lam + mu)))

    if norm(lo) <= radius:  # the hard case: g has (almost) no component along the lowest eigenvector
        p = -gq / (lam + lo)
        p[0] = 0.0
        p[0] = math.sqrt(max(radius ** 2 - float(p @ p), 0.0))
        p = Q @ p
        return p, float(-(g @ p + 0.5 * p @ (B @ p))), True
    mu, _ = _boundary_shift(lam, gq, radius, lo, lo + float(np.linalg.norm(g)) / radius + scale)
    p = -gq / (lam + mu)
    # ||p|| <= radius; where rounding kept it short (near the hard case) the lowest eigenvector, along which the
    # model is flat at this shift, takes it to the boundary (More and Sorensen 1983)
    p[0] = math.copysign(math.sqrt(max(radius ** 2 - float(p[1:] @ p[1:]), 0.0)), p[0])
    p = Q @ p
    return p, float(-(g @ p + 0.5 * p @ (B @ p))), True


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
