"""A scikit-learn style front door: fit the theory on (X, y), predict on new X."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from attnpaths._src.attention import ExampleBound, Heads
from attnpaths._src.checks import as_class_labels, as_labels
from attnpaths._src.order import gp_order
from attnpaths._src.paths import path_features
from attnpaths._src.predictor import Prediction, accuracy, predict
from attnpaths._src.saddle import Saddle, solve_saddle
from attnpaths._src.spec import NetworkSpec


class AttentionPathsRegressor:
    """Bayesian deep multi-head attention network, solved by the finite-width theory (or its GP limit).

    Args:
      spec: the network (heads, widths, variances, temperature, readout).
      attention: one `Heads` per layer that computes attention for any inputs (`BilinearHeads`, `QKHeads`, a
        user's own class); `GivenAttention` is refused, as it cannot be computed for new X.
      gp_limit: use the infinite-width order parameter instead of solving the action.
      tol: gradient tolerance of the solver.

    Fitted attributes: `saddle_` (None in the GP limit), `U1_` (H, H), `xi_` (P, N0, H), `y_` (P,).

    `predict(X)` always returns the predictor mean (P*,); `predict_distribution(X)` returns
    `Prediction(mean, var)`. Targets may be any real numbers (Gaussian likelihood); `score` needs +-1 labels.
    """

    def __init__(self, spec: NetworkSpec, attention: Sequence, gp_limit: bool = False, tol: float = 1e-8):
        if not isinstance(spec, NetworkSpec):
            raise ValueError(f"spec must be a NetworkSpec; got {type(spec).__name__}")
        if isinstance(attention, (Heads, str)) or not isinstance(attention, Sequence):
            raise ValueError(f"attention must be a list with one Heads per layer; got {type(attention).__name__}")
        for l, layer in enumerate(attention):
            if not isinstance(layer, Heads) or isinstance(layer, ExampleBound):
                raise ValueError(f"attention[{l}] must be Heads that compute attention for new inputs (e.g. "
                                 f"BilinearHeads, QKHeads); got {type(layer).__name__}. For attention given per "
                                 "example use path_features / solve_saddle / predict")
        self.spec, self.attention, self.gp_limit, self.tol = spec, list(attention), gp_limit, tol

    def fit(self, X, y) -> "AttentionPathsRegressor":
        """X: (P, N0, T) training inputs; y: (P,) targets."""
        self.xi_ = path_features(self.spec, self.attention, X)
        self.y_ = as_labels("y", y, self.xi_.shape[0])
        if self.gp_limit:
            self.saddle_: Saddle | None = None
            self.U1_ = gp_order(self.spec)[0]
        else:
            self.saddle_ = solve_saddle(self.spec, self.xi_, self.y_, tol=self.tol)
            self.U1_ = self.saddle_.U1
        return self

    def predict_distribution(self, X) -> Prediction:
        """Predictor mean and variance on X (P*, N0, T): `Prediction(mean (P*,), var (P*,))` (spec B.6)."""
        if not hasattr(self, "U1_"):
            raise RuntimeError("call fit(X, y) before predict")
        return predict(self.spec, self.xi_, self.y_, path_features(self.spec, self.attention, X), self.U1_)

    def predict(self, X) -> np.ndarray:
        """Predictor mean on X (P*, N0, T): (P*,)."""
        return self.predict_distribution(X).mean

    def score(self, X, y) -> float:
        """Sign accuracy on (X, y); y must hold +-1 class labels."""
        mean = self.predict(X)
        return accuracy(mean, as_class_labels("y", y, mean.shape[0]))
