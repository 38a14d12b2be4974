"""Minimise the action: a trust-region Newton method on positive definite matrices (spec B.6, C.1).

The unknowns are U_1, ..., U_L (U_a is eliminated in closed form, B.5). Every iterate is symmetric positive
definite, and every step is taken in WHITENED coordinates: at U_l = L_l L_l^T (Cholesky),

    U_l(X_l) = L_l (I + X_l + X_l^2 / 2) L_l^T,          X_l symmetric,

which is positive definite for every X (I + X + X^2/2 = (I + X/2)^2 + X^2/4), and measures a step by the relative
change of U, ||X||_F, whatever the scale of U. In these coordinates the entropy's curvature is O(N_l) times the
identity and the energy's O(P), so one trust radius fits every level and every temperature. Each iteration
minimises the quadratic model of S within ||x|| <= radius (x packs the upper triangles of all X_l, off-diagonal
entries times sqrt 2, so ||x|| = ||X||_F):

* `method="dense"`: the exact Hessian (energy part and level 1's entropy in closed form,
  `action.energy_hessian_pairs`, `_level1_curvature`; the levels above by autodiff of small matrices) and the
  nearly exact subproblem solution (More and Sorensen 1983) by Cholesky factorisations, from the
  eigen-decomposition only near the hard case (`trust_region.dense_step`). For up to ~64 paths.
* `method="krylov"`: no Hessian is formed. Preconditioned Steihaug-Toint conjugate gradients on Hessian-vector
  products (`krylov.hvp`, O(D^2 H) or O(P^2 D) each), the trust region in the preconditioner's norm; the
  preconditioner (`krylov.preconditioner`) is level 1's exact Hessian diagonal with the exact block of the
  levels above and its coupling to level 1 (which carry the Hessian's smallest and largest eigenvalues).

Near the minimum a dense step may reuse the previous point's Hessian (a chord step, `_chord_step`) when the
last Newton step's contraction predicts that this step is the last. Each trial point is evaluated with the
energy's factors, which the next model takes over if the step is accepted, so the P x P kernel is factorised
once per step.

The radius grows after good steps and shrinks after poor ones (Nocedal and Wright, Alg. 4.1). The solver stops
when max |dS/dU| (the gradient with respect to the symmetric matrices of the N_max-normalised action) is <= tol,
or when its scale-free form max |L^T dS/dU L| is,
then certifies the minimum by the smallest eigenvalue of the Hessian in packed upper-triangle coordinates
(spec C.1): from the dense Hessian (by Lanczos on its inverse, `trust_region.lowest_eigenvalue`), or by Lanczos
iteration (ARPACK via SciPy) on Hessian-vector products of the preconditioned (congruent) Hessian.

The energy is evaluated by the route of the training data (`routes.py`): P x P work when P <= N0 H, D x D work
(D = N0 H) otherwise; a width or temperature sweep reuses one compiled executable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jax.scipy.linalg import cho_solve

from attnpaths._src.action import (ProductOperands, energy_gradient, energy_hessian,
                                   energy_hessian_pairs, entropy, scalar_order_parameter, whiten_factors)
from attnpaths._src.checks import as_count
from attnpaths._src.krylov import hvp as _hvp
from attnpaths._src.krylov import Curvature, Preconditioner, krylov_parts, smallest_eigenvalue
from attnpaths._src.order import gp_order, order_to_cholesky, pack_order, symmetrize, unpack_order
from attnpaths._src.routes import EnergyFactors, TrainingData, example_data, training_data
from attnpaths._src.spec import Hyper, NetworkSpec
from attnpaths._src.trust_region import (dense_step, lowest_eigenvalue, next_radius, steihaug_step, step_accepted,
                                         step_quality)
from attnpaths._src.whitened import (_dense_hessian, _grad_max, _n_tri, _product_block, _retract,  # noqa: F401
                                     _pair_weights, _retract_levels, _sizes, _surrogate, _symmetric_block,
                                     _unpack_scaled)

METHODS = ("auto", "dense", "krylov")
DENSE_MAX_PATHS = 64  # above this many paths the dense Hessian (H^4 entries) costs more than Krylov steps


@dataclass(frozen=True, eq=False)
class Saddle:
    """The minimum of the action.

    U: (U_1, ..., U_L), U_l of shape (n_l, n_l); U_1 = U[0] is the (H, H) path-path weight matrix.
    U_a: the scalar readout order parameter (B.5).
    action: S at the minimum (normalised by N_max).
    grad_max: max |dS/dU| at the returned point.
    relative_grad_max: max |L^T (dS/dU) L| with U = L L^T, the gradient with respect to relative changes of U.
    iterations: trust-region iterations taken (accepted and rejected steps).
    min_hessian_eigenvalue: smallest eigenvalue of the Hessian of S, in packed upper-triangle coordinates
      (method 'dense', spec C.1) or of F^-1 (whitened Hessian) F^-T with C = F F^T the preconditioner (method
      'krylov', by Lanczos); > 0 certifies a strict local minimum either way (the Hessians are congruent at a
      stationary point).
    converged: min(grad_max, relative_grad_max) <= tol and min_hessian_eigenvalue > 0.
    spec: the network (widths, variances, temperature) it was solved for.
    route: 'example' or 'gram', how the energy was evaluated.
    method: 'dense' or 'krylov', how the Newton steps were computed.
    hessian_products: Hessian-vector products used, certificate included (krylov; 0 for dense).
    """

    U: tuple
    U_a: float
    action: float
    grad_max: float
    relative_grad_max: float
    iterations: int
    min_hessian_eigenvalue: float
    converged: bool
    spec: NetworkSpec
    route: str = "example"
    method: str = "dense"
    hessian_products: int = 0

    @property
    def U1(self) -> np.ndarray:
        return self.U[0]


class Model(NamedTuple):
    """The quadratic model of the normalised action at U, in the whitened coordinates x of U (x = 0 at U).

    S: () the action. grad: (n,) dS/dx, n = sum n_l (n_l + 1) / 2. grad_max: (2,) max |dS/dU| and
    max |L^T dS/dU L| (`_grad_max`). hess: (n, n) d2S/dx2, or None (not asked for). factors: the energy
    factors at U_1. Ls: the Cholesky factors L_l (n_l, n_l) of the U_l, which define x. U_a: () the readout
    order parameter (B.5).
    """

    S: jnp.ndarray
    grad: jnp.ndarray
    grad_max: jnp.ndarray
    hess: jnp.ndarray | None
    factors: EnergyFactors
    Ls: list
    U_a: jnp.ndarray


@partial(jax.jit, static_argnames=("heads", "keep_M", "dense"))
def _model(Us, data: TrainingData, hyper: Hyper, heads, keep_M: bool, dense: bool) -> Model:
    """The `Model` of the action at U = Us; the Hessian only if `dense`."""
    f = data.factors(Us[0], hyper.variances[0], hyper.temperature, keep_M)
    model = _model_from(Us, f, hyper, heads)
    return model._replace(hess=_whitened_hessian(model.Ls, f, hyper, heads, keep_M)) if dense else model


@partial(jax.jit, static_argnames=("heads",))
def _model_from(Us, f: EnergyFactors, hyper: Hyper, heads) -> Model:
    """The `Model` at U = Us, without the Hessian, from the energy factors f at U_1 (a trial's, so that an
    accepted step factorises the P x P kernel once, not twice)."""
    sizes = _sizes(heads)
    Ls = [jnp.linalg.cholesky(U) for U in Us]
    x0 = jnp.zeros(sum(_n_tri(n) for n in sizes))
    to_order = partial(_retract, Ls)
    gE = energy_gradient(f, hyper.variances[0])
    surrogate = _surrogate(to_order, gE, hyper, heads)
    n_max = jnp.max(hyper.widths)
    S = (f.E + entropy(Us, hyper, heads)) / n_max
    grad = jax.grad(surrogate)(x0) / n_max
    grad_max = _grad_max(Us, Ls, gE, hyper, heads) / n_max
    U_a = scalar_order_parameter(Us[-1], hyper, heads[-1])
    return Model(S, grad, grad_max, None, f, Ls, U_a)


def _whitened_hessian(Ls, f: EnergyFactors, hyper: Hyper, heads, form_M: bool) -> jnp.ndarray:
    """d2S/dx2 (n, n) of the normalised action at x = 0 in the whitened coordinates of the Cholesky factors Ls,
    from the energy factors f there: level 1's block in closed form, the levels above by autodiff. `form_M`:
    the energy's part from M's blocks, formed from W if f kept only W, rather than through P x P blocks
    (`_energy_block`).

    Three compiled pieces, not one: fused, XLA ran the entropy's rows beside the energy's matmuls and the whole
    took 0.1-0.2 s longer at 64 paths than its pieces apart."""
    hess = _whitened_entropy_hessian(Ls, energy_gradient(f, hyper.variances[0]), hyper, heads)
    return _add_level1(hess, _whitened_energy_block(Ls[0], f, hyper.variances[0], form_M), jnp.max(hyper.widths))


@partial(jax.jit, static_argnames=("heads",))
def _whitened_entropy_hessian(Ls, gE, hyper: Hyper, heads) -> jnp.ndarray:
    """The Hessian (n, n) of the surrogate entropy + <gE, U_1> (gE = dE/dU_1) in whitened coordinates,
    un-normalised."""
    sizes = _sizes(heads)
    xs0 = [jnp.zeros(_n_tri(n)) for n in sizes]
    to_order = partial(_retract_levels, Ls)
    Us = to_order(xs0)
    return _dense_hessian(_surrogate(to_order, gE, hyper, heads), xs0,
                          _level1_curvature(Us, Ls, gE, hyper, heads, whitened=True))


@partial(jax.jit, static_argnames=("form_M",))
def _whitened_energy_block(L1, f: EnergyFactors, s0, form_M: bool) -> jnp.ndarray:
    return _energy_block(whiten_factors(f, L1), s0, form_M, 1.0 / math.sqrt(2.0))  # J w = L1 W L1^T


@jax.jit
def _add_level1(hess, block, n_max):
    n1 = block.shape[0]
    return hess.at[:n1, :n1].add(block) / n_max


def _energy_block(f: EnergyFactors, s0, form_M: bool, offdiag: float) -> jnp.ndarray:
    """The energy's level-1 block (n1, n1) in upper-triangle coordinates (`_pair_weights`): from M's blocks
    (`action.energy_hessian_pairs`, formed from W if f kept only W) when `form_M`, else from W through the P x P
    blocks W_a W_b^T (`action.energy_hessian`; cheaper when N0 > P)."""
    if form_M:
        return _pair_weights(f.v.shape[0], offdiag) * energy_hessian_pairs(f, s0)
    return _symmetric_block(energy_hessian(f, s0), offdiag)


def _level1_curvature(Us, Ls, gE, hyper: Hyper, heads, whitened: bool) -> jnp.ndarray:
    """Level 1's block of the Hessian of the entropy plus <dE/dU_1, U_1>, in closed form, or (0, 0) when L = 1
    (U_1 is then U_L, which also enters U_a).

    For L >= 2, U_1 enters the entropy only through N_1 [Tr(G' U_1) - ln det U_1] (spec B.4). In packed
    coordinates only the log-det curves: N_1 Tr(U^-1 dU U^-1 dU). In whitened ones (U_1 = L (I + X + X^2/2)
    L^T) the log-det has no curvature (ln det(I + X + X^2/2) = Tr X + O(X^3)) and the linear part, gradient
    G = dS/dU_1 + N_1 U_1^-1, gives Tr(C X^2)/2 with C = L^T G L."""
    if len(heads) == 1:
        return jnp.zeros((0, 0), dtype=Us[0].dtype)
    n, N1 = Us[0].shape[0], hyper.widths[0]
    eye = jnp.eye(n, dtype=Us[0].dtype)
    U_inv = cho_solve((Ls[0], True), eye)
    if not whitened:
        return _product_block(U_inv, N1 * U_inv, 1.0)
    G = jax.grad(lambda U: entropy([symmetrize(U)] + list(Us[1:]), hyper, heads)
                 + jnp.vdot(gE, symmetrize(U)))(Us[0]) + N1 * U_inv
    return _product_block(eye, symmetrize(Ls[0].T @ G @ Ls[0]), 1.0 / math.sqrt(2.0))


@partial(jax.jit, static_argnames=("heads", "keep_M"))
def _trial(Ls, x, data, hyper: Hyper, heads, keep_M: bool):
    """(S, Us, f) at the step x from the point of Cholesky factors Ls: the action, the order parameters and the
    energy factors there, which the next `_model_from` takes over if the step is accepted."""
    Us = _retract(Ls, x)
    f = data.factors(Us[0], hyper.variances[0], hyper.temperature, keep_M)
    return (f.E + entropy(Us, hyper, heads)) / jnp.max(hyper.widths), Us, f


@partial(jax.jit, static_argnames=("heads", "form_M"))
def _packed_hessian_from(Us, f, hyper: Hyper, heads, form_M: bool = False):
    sizes = _sizes(heads)
    s0 = hyper.variances[0]
    ps0 = [pack_order([U]) for U in Us]
    to_order = lambda ps: [unpack_order(p, [n])[0] for p, n in zip(ps, sizes)]  # noqa: E731
    gE = energy_gradient(f, s0)
    Ls = [jnp.linalg.cholesky(U) for U in Us]
    hess = _dense_hessian(_surrogate(to_order, gE, hyper, heads), ps0,
                          _level1_curvature(Us, Ls, gE, hyper, heads, whitened=False))
    n1 = _n_tri(sizes[0])
    hess = hess.at[:n1, :n1].add(_energy_block(f, s0, form_M, 1.0))
    return hess / jnp.max(hyper.widths)


def packed_hessian(Us, xi, y, hyper: Hyper, heads):
    """d2S/dp2 of the normalised action in packed upper-triangle coordinates p (spec C.1), dense.

    Us: (U_1, ..., U_L); xi: (P, N0, H) training path features; y: (P,) labels.
    """
    data = example_data(xi, y)
    Us = [jnp.asarray(U) for U in Us]
    f = _factors(data, Us[0], hyper, keep_M=data.keeps_M(dense=True))
    return _packed_hessian_from(Us, f, hyper, heads)


@partial(jax.jit, static_argnames=("keep_M",))
def _factors(data, U1, hyper: Hyper, keep_M: bool):
    return data.factors(U1, hyper.variances[0], hyper.temperature, keep_M)


# ---- the solver ---------------------------------------------------------------------------------------------
def _choose_method(method: str, n_paths: int) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    if method != "auto":
        return method
    return "dense" if n_paths <= DENSE_MAX_PATHS else "krylov"


CHORD_MARGIN = 0.5
"""A chord step's predicted gradient must be below CHORD_MARGIN * tol (`_chord_step`)."""


def _chord_step(before: float, after: float, tol: float) -> bool:
    """Whether the next dense step may reuse the Hessian of the Newton step that took the gradient from `before`
    to `after` (a chord step, which saves one Hessian near the minimum).

    With third derivative T and ||s|| ~ before / lambda for the Newton step s (lambda the Hessian's scale), the
    step left after ~ ||T|| ||s||^2 / 2 and changed the Hessian by dH ~ ||T|| ||s||; so ||dH|| / lambda ~
    2 after / before, and a step with the old Hessian leaves a gradient of about ||dH|| / lambda * after =
    2 after^2 / before. The chord step is taken when that is below CHORD_MARGIN * tol, i.e. when it is expected to
    be the last (on the one-shot grid the estimate was within a factor of 2 of the gradient the step left);
    otherwise the Hessian is formed anew. The minimum is certified by the Hessian at the returned point either
    way."""
    return after < before and 2.0 * after ** 2 / before <= CHORD_MARGIN * tol


def _smallest_eigenvalue(Us, Ls, f, hyper, heads, scale: Preconditioner | None, form_M: bool = False,
                         curvature: Curvature | None = None,
                         operands: ProductOperands | None = None) -> tuple[float, int]:
    """The certificate: (smallest Hessian eigenvalue, Hessian-vector products used).

    Dense (scale None): the packed upper-triangle Hessian of spec C.1, fully. Krylov: Lanczos on the whitened
    Hessian scaled by the preconditioner's diagonal `scale` (`krylov.smallest_eigenvalue`); at a stationary
    point the two are congruent, so by Sylvester's law of inertia they have the same number of negative
    eigenvalues, and one certifies what the other does.
    """
    if scale is None:
        return lowest_eigenvalue(np.asarray(_packed_hessian_from(Us, f, hyper, heads, form_M))), 0
    return smallest_eigenvalue(lambda w: np.asarray(_hvp(Ls, f, hyper, heads, jnp.asarray(w), curvature, operands)),
                              scale)


def _check_init(init, spec: NetworkSpec) -> list[jnp.ndarray]:
    sizes = spec.level_sizes
    if init is None:
        return [jnp.asarray(U) for U in gp_order(spec)]
    if len(init) != len(sizes):
        raise ValueError(f"init must hold L = {len(sizes)} matrices (U_1, ..., U_L); got {len(init)}")
    order_to_cholesky(init, sizes)  # raises ValueError unless every U is symmetric positive definite
    return [jnp.asarray(0.5 * (np.asarray(U, dtype=np.float64) + np.asarray(U, dtype=np.float64).T))
            for U in init]


def solve_saddle(spec: NetworkSpec, xi, y=None, init: Sequence | None = None, tol: float = 1e-8,
                 max_iter: int = 100, raise_on_failure: bool = True,
                 callback: Callable[[int, float, float], None] | None = None, route: str = "auto",
                 method: str = "auto", max_products: int = 500) -> Saddle:
    """Minimise the action S(U) (spec B.4) over symmetric positive definite U_1, ..., U_L.

    Args:
      spec: network; its widths, variances and temperature are runtime values (no recompilation).
      xi: (P, N0, H) training path features from `path_features`, or training data already in a route's form
        (`GramStatistics` from `gram_statistics` for P up to 10^6 and beyond, or `routes.training_data`).
      y: (P,) training labels (None when xi is a training-data object).
      init: (U_1, ..., U_L) warm start; default the GP values (B.7).
      tol: stop when max |dS/dU| <= tol (normalised action), or when the same holds for the gradient with
        respect to relative changes of U, max |L^T dS/dU L| (U = L L^T), which makes the rule independent of
        the scale of the features.
      max_iter: trust-region iterations allowed.
      raise_on_failure: raise RuntimeError if not converged or if the Hessian certificate fails.
      callback: called as callback(iteration, action, grad_max) after every iteration.
      route: 'auto' (P x P work when P <= N0 H, else D x D), 'example' or 'gram'.
      method: 'auto' (dense up to 64 paths, else krylov), 'dense' or 'krylov'.
      max_products: Hessian-vector products allowed per krylov iteration.

    Returns:
      Saddle.
    """
    data = training_data(spec, xi, y, route)
    if not (isinstance(tol, (int, float, np.floating)) and math.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a finite number > 0; got {tol!r}")
    max_iter = as_count("max_iter", max_iter, 0)
    max_products = as_count("max_products", max_products)
    dense = _choose_method(method, spec.n_paths) == "dense"
    keep_M = data.keeps_M(dense)
    model_keeps_M = keep_M and not dense  # dense: the model keeps W, the Hessian forms M when it is needed
    hyper, heads = spec.hyper(), spec.heads
    Us = _check_init(init, spec)
    model = _model(Us, data, hyper, heads, model_keeps_M, False)
    S, grad, (grad_max, relative_max) = float(model.S), np.asarray(model.grad), np.asarray(model.grad_max)
    if not math.isfinite(S):
        if spec.temperature == 0:
            raise ValueError("the training kernel K_U is singular at the initial U and temperature T = 0: "
                             "T > 0 is needed (or fewer examples than the kernel's rank)")
        raise FloatingPointError(f"the action is not finite at the initial U (S = {S}); check xi and y")
    radius, iterations, products, stalled = 1.0, 0, 0, False
    # level 1's preconditioner: the exact diagonal until the first interior Steihaug step, the Kronecker form from
    # then on (`krylov_parts`), which halves the products near the minimum and scales the Hessian far from it worse
    kronecker = False
    scale, curvature, operands = (None,) * 3 if dense else krylov_parts(model.Ls, model.factors, hyper, heads)
    hess = None  # the dense Hessian at the current point, formed once it is needed (not at the minimum)
    stale = False  # whether hess is the previous point's (`_chord_step`)
    while min(grad_max, relative_max) > tol and iterations < max_iter and not stalled:
        if dense:
            if hess is None:
                hess, stale = np.asarray(_whitened_hessian(model.Ls, model.factors, hyper, heads, keep_M)), False
            step, predicted, boundary = dense_step(grad, hess, radius)
        else:
            hvp = lambda w: np.asarray(_hvp(model.Ls, model.factors, hyper, heads, jnp.asarray(w),  # noqa: E731
                                            curvature, operands))
            step, predicted, boundary, used = steihaug_step(grad, hvp, radius, max_products,
                                                            precondition=scale.solve, floor=0.1 * tol)
            products += used
            kronecker = kronecker or not boundary
        iterations += 1
        trial, trial_Us, trial_f = _trial(model.Ls, jnp.asarray(step), data, hyper, heads, model_keeps_M)
        rho = step_quality(S, float(trial), predicted)
        radius = next_radius(radius, rho, boundary)
        if step_accepted(rho):
            Us = list(trial_Us)
            model = _model_from(Us, trial_f, hyper, heads)
            before = min(grad_max, relative_max)
            S, grad, (grad_max, relative_max) = float(model.S), np.asarray(model.grad), np.asarray(model.grad_max)
            chord = dense and not (boundary or stale) and _chord_step(before, min(grad_max, relative_max), tol)
            hess, stale = (hess, True) if chord else (None, False)
            scale, curvature, operands = ((None,) * 3 if dense else
                                          krylov_parts(model.Ls, model.factors, hyper, heads, kronecker))
        elif stale:
            hess = None
        stalled = radius < 1e-12
        if callback is not None:
            callback(iterations, S, grad_max)
    min_eig, certificate_products = _smallest_eigenvalue(Us, model.Ls, model.factors, hyper, heads, scale,
                                                         keep_M, curvature, operands)
    converged = bool(min(grad_max, relative_max) <= tol and min_eig > 0)
    result = Saddle(U=tuple(np.asarray(U) for U in Us), U_a=float(model.U_a),
                    action=S, grad_max=float(grad_max), relative_grad_max=float(relative_max),
                    iterations=iterations, min_hessian_eigenvalue=min_eig,
                    converged=converged, spec=spec, route=data.route, method="dense" if dense else "krylov",
                    hessian_products=products + certificate_products)
    if raise_on_failure and not converged:
        raise RuntimeError(_failure_message(result, tol, stalled))
    return result


def _failure_message(result: Saddle, tol: float, stalled: bool) -> str:
    if min(result.grad_max, result.relative_grad_max) <= tol:
        why = f"the Hessian is not positive definite (smallest eigenvalue {result.min_hessian_eigenvalue:.2e})"
    else:
        why = (f"max|dS/dU| = {result.grad_max:.2e} > tol = {tol:.1e} after {result.iterations} iterations"
               + (" (the trust region collapsed: no step decreases S)" if stalled else ""))
    hint = ("Try a warm start (init=...), a larger max_iter, or a larger temperature")
    widths = result.spec.widths
    if min(widths) < 1.0:
        hint = (f"The widths {widths} are below 1: the theory's limit is N, P -> infinity at fixed P/N, and the "
                "entropy (O(N)) no longer regularises U. Try widths >= 1, or a warm start from a larger width")
    return f"the action minimisation did not converge: {why}. {hint}"


def solve_widths(spec: NetworkSpec, xi, y=None, widths: Sequence[float] = (), warm_start: bool = True,
                 **kwargs) -> list[Saddle]:
    """Solve for every width in `widths` (all layers equal), largest first, each warm-started from the last.

    Returns the Saddles in the order of `widths`. One compiled function serves every width, and the training
    data are put in their route's form once.
    """
    if len(widths) == 0:
        raise ValueError("widths must be a non-empty sequence of positive numbers")
    data = training_data(spec, xi, y, kwargs.pop("route", "auto"))
    order = sorted(range(len(widths)), key=lambda i: -float(widths[i]))
    out: dict[int, Saddle] = {}
    init = None
    for i in order:
        saddle = solve_saddle(spec.with_width(widths[i]), data, init=init, **kwargs)
        out[i] = saddle
        init = saddle.U if warm_start else None
    return [out[i] for i in range(len(widths))]

