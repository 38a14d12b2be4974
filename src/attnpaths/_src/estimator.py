"""A scikit-learn style front door: fit the theory on (X, y), predict on new X."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from attnpaths._src.attention import BilinearHeads, QKHeads
from attnpaths._src.checks import as_labels
from attnpaths._src.order import gp_order
from attnpaths._src.paths import path_features
from attnpaths._src.predictor import accuracy, predict
from attnpaths._src.saddle import Saddle, solve_saddle
from attnpaths._src.spec import NetworkSpec


class AttentionPathsRegressor:
    """Bayesian deep multi-head attention network, solved by the finite-width theory (or its GP limit).

    Args:
      spec: the network (heads, widths, variances, temperature, readout).
      attention: one `BilinearHeads` or `QKHeads` per layer (attention is recomputed for every new X).
      gp_limit: use the infinite-width order parameter instead of solving the action.
      tol: gradient tolerance of the solver.

    Fitted attributes: `saddle_` (None in the GP limit), `U1_` (H, H), `xi_` (P, N0, H), `y_` (P,).
    """

    def __init__(self, spec: NetworkSpec, attention: Sequence, gp_limit: bool = False, tol: float = 1e-8):
        if not all(isinstance(a, (BilinearHeads, QKHeads)) for a in attention):
            raise ValueError("attention must hold BilinearHeads or QKHeads per layer, so that it can be computed "
                             "for new inputs; for precomputed attention use path_features/solve_saddle/predict")
        self.spec, self.attention, self.gp_limit, self.tol = spec, list(attention), gp_limit, tol

    def fit(self, X, y) -> "AttentionPathsRegressor":
        """X: (P, N0, T) training inputs; y: (P,) labels."""
        self.xi_ = path_features(self.spec, self.attention, X)
        self.y_ = as_labels("y", y, self.xi_.shape[0])
        if self.gp_limit:
            self.saddle_: Saddle | None = None
            self.U1_ = gp_order(self.spec)[0]
        else:
            self.saddle_ = solve_saddle(self.spec, self.xi_, self.y_, tol=self.tol)
            self.U1_ = self.saddle_.U1
        return self

    def predict(self, X, return_std: bool = False):
        """Predictor mean (P*,), and its standard deviation (P*,) if return_std."""
        if not hasattr(self, "U1_"):
            raise RuntimeError("call fit(X, y) before predict")
        pred = predict(self.spec, self.xi_, self.y_, path_features(self.spec, self.attention, X), self.U1_)
        return (pred.mean, np.sqrt(np.maximum(pred.var, 0.0))) if return_std else pred.mean

    def score(self, X, y) -> float:
        """Sign accuracy on (X, y)."""
        return accuracy(self.predict(X), y)
