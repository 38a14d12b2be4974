"""scikit-learn estimators: fit the theory on (X, y), predict on new X.

`AttentionPathsRegressor` and `AttentionPathsClassifier` follow the scikit-learn estimator contract: the
constructor stores its arguments untouched, `fit` validates them (a ValueError naming the parameter), fitted
attributes end in `_`, `get_params`/`set_params`/`clone` come from `BaseEstimator`, so `cross_val_score`,
`GridSearchCV` and pipelines work. The regressor's `score` is R^2, the classifier's the accuracy.

Inputs. X of shape (P, N0, T) holds P sequences of T tokens of width N0 (tokens as columns, the library's axis
order). A 2-D X (P, n_features), which is what scikit-learn tools pass around, is read as

* `input_shape=None` (default): one token per example, X[:, :, None]. With one token every softmax is 1, so the
  network is a Bayesian deep linear network, which the theory covers exactly (its order parameter is a scalar
  renormalising the linear kernel x.x'/N0);
* `input_shape=(N0, T)`: flattened sequences, X.reshape(P, N0, T) (row-major: feature-major, token-minor).

Network. `spec` (heads, widths, variances, temperature, readout) and `attention` (one `Heads` per layer) as in
the rest of the library. With both left None the network is one layer of one head, widths 100, variances 1, the
`NetworkSpec` defaults. `attention=None` is allowed whenever every layer has one head: that head attends
uniformly (mean pooling over keys), which for a single token is the only attention there is.

Precedence: `temperature` (if not None) replaces spec.temperature; `width` (if not None) sets every width of
the spec (N_1 = ... = N_L = N_a = width); `width=inf` or `gp_limit=True` is the infinite-width (GP) limit. So
`GridSearchCV(est, {"temperature": [...], "width": [...]})` works on any spec.
"""

from __future__ import annotations

import math
import numbers
from typing import Sequence

import numpy as np
from scipy.stats import norm
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from attnpaths._src.attention import BilinearHeads, ExampleBound, Heads
from attnpaths._src.order import gp_order
from attnpaths._src.paths import path_features
from attnpaths._src.predictor import Prediction, predict
from attnpaths._src.saddle import Saddle, solve_saddle
from attnpaths._src.spec import NetworkSpec


def _check_spec(spec, temperature, width, gp_limit) -> tuple[NetworkSpec, bool]:
    """The network the estimator fits (spec with temperature / width applied) and whether it is the GP limit."""
    if spec is None:
        spec = NetworkSpec(heads=1)
    elif not isinstance(spec, NetworkSpec):
        raise ValueError(f"spec must be a NetworkSpec or None; got {type(spec).__name__}")
    if not isinstance(gp_limit, (bool, np.bool_)):
        raise ValueError(f"gp_limit must be True or False; got {gp_limit!r}")
    if temperature is not None:
        spec = spec.replace(temperature=temperature)  # NetworkSpec names `temperature` if it is bad
    if width is None:
        return spec, bool(gp_limit)
    if (isinstance(width, (bool, np.bool_)) or not isinstance(width, numbers.Real) or math.isnan(width)
            or width <= 0):
        raise ValueError(f"width must be a number > 0 (inf for the GP limit) or None; got {width!r}")
    if math.isinf(width):
        return spec, True
    if gp_limit:
        raise ValueError(f"width={width!r} contradicts gp_limit=True (the infinite-width limit): set width=None "
                         "or width=inf, or gp_limit=False")
    return spec.with_width(float(width)), False


def _check_attention(attention, spec: NetworkSpec, n0: int) -> list:
    """One `Heads` per layer that computes attention for new inputs; None: uniform single heads."""
    if attention is None:
        if any(h != 1 for h in spec.heads):
            raise ValueError(f"attention=None means one uniformly attending head per layer, but spec has heads "
                             f"{spec.heads}: pass attention, one Heads per layer")
        # W = 0: every score is 0 and the softmax over keys is uniform
        return [BilinearHeads(np.zeros((1, n0, n0))) for _ in spec.heads]
    if isinstance(attention, (Heads, str)) or not isinstance(attention, Sequence):
        raise ValueError(f"attention must be a list with one Heads per layer; got {type(attention).__name__}")
    for l, layer in enumerate(attention):
        if not isinstance(layer, Heads) or isinstance(layer, ExampleBound):
            raise ValueError(f"attention[{l}] must be Heads that compute attention for new inputs (e.g. "
                             f"BilinearHeads, QKHeads); got {type(layer).__name__}. For attention given per "
                             "example use path_features / solve_saddle / predict")
    return list(attention)


def _check_input_shape(input_shape) -> tuple[int, int] | None:
    if input_shape is None:
        return None
    try:
        n0, n_tokens = (_as_int(v) for v in input_shape)
    except (TypeError, ValueError):
        n0 = n_tokens = 0
    if n0 < 1 or n_tokens < 1:
        raise ValueError(f"input_shape must be None or (N0, T), two ints >= 1; got {input_shape!r}")
    return n0, n_tokens


def _as_int(value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError
    return int(value)


class _AttentionPathsEstimator(BaseEstimator):
    """Shared parameters, input handling and theory fit of the regressor and the classifier."""

    def __init__(self, spec: NetworkSpec | None = None, attention: Sequence | None = None, gp_limit: bool = False,
                 tol: float = 1e-8, *, temperature: float | None = None, width: float | None = None,
                 input_shape: tuple[int, int] | None = None):
        self.spec = spec
        self.attention = attention
        self.gp_limit = gp_limit
        self.tol = tol
        self.temperature = temperature
        self.width = width
        self.input_shape = input_shape

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags

    def _sequences(self, X) -> np.ndarray:
        """X after `validate_data`, as (P, N0, T) sequences (see the module docstring)."""
        shape = _check_input_shape(self.input_shape)
        if X.ndim == 2:
            if shape is None:
                return X[:, :, None]
            if X.shape[1] != shape[0] * shape[1]:
                raise ValueError(f"X has {X.shape[1]} features but input_shape={shape} needs N0 * T = "
                                 f"{shape[0] * shape[1]}")
            return X.reshape(X.shape[0], *shape)
        if X.ndim != 3:
            raise ValueError(f"X must have shape (P, N0, T) or (P, n_features); got shape {X.shape}")
        if shape is not None and X.shape[1:] != shape:
            raise ValueError(f"X has sequences of shape (N0, T) = {X.shape[1:]} but input_shape={shape}")
        return X

    def _fit_targets(self, X, targets: np.ndarray):
        """Solve the theory on validated X (P, ...) and float targets (P,); sets the fitted attributes."""
        spec, gp = _check_spec(self.spec, self.temperature, self.width, self.gp_limit)
        x = self._sequences(X)
        self.spec_ = spec
        self.attention_ = _check_attention(self.attention, spec, x.shape[1])
        self.xi_ = np.asarray(path_features(spec, self.attention_, x))
        self.y_ = targets
        if gp:
            self.saddle_: Saddle | None = None
            self.U1_ = gp_order(spec)[0]
        else:
            self.saddle_ = solve_saddle(spec, self.xi_, targets, tol=self.tol)
            self.U1_ = np.asarray(self.saddle_.U1)
        return self

    def predict_distribution(self, X) -> Prediction:
        """Predictor mean and variance of the network output f(x*) on X (spec B.6).

        X: (P*, N0, T) or (P*, n_features). Returns `Prediction(mean (P*,), var (P*,))`; the variance is that of
        the posterior over networks, without the likelihood variance T (spec H.4).
        """
        check_is_fitted(self, "U1_")
        X = validate_data(self, X, reset=False, allow_nd=True, dtype=np.float64)
        xi = path_features(self.spec_, self.attention_, self._sequences(X))
        return predict(self.spec_, self.xi_, self.y_, xi, self.U1_)


class AttentionPathsRegressor(RegressorMixin, _AttentionPathsEstimator):
    """Bayesian deep multi-head attention network, solved by the finite-width theory (or its GP limit).

    Args:
      spec: the network (heads, widths, variances, temperature, readout); None: `NetworkSpec(heads=1)`.
      attention: one `Heads` per layer that computes attention for any inputs (`BilinearHeads`, `QKHeads`, a
        user's own class); `GivenAttention` is refused, as it cannot be computed for new X. None: a uniformly
        attending head per layer (only for specs with one head per layer).
      gp_limit: use the infinite-width order parameter instead of solving the action.
      tol: gradient tolerance of the solver.
      temperature: T, replaces spec.temperature when not None.
      width: N, sets every width of spec when not None; inf is the GP limit.
      input_shape: (N0, T) to read a 2-D X (P, N0 * T) as flattened sequences; None: a 2-D X is one token per
        example (a Bayesian deep linear network).

    Fitted attributes: `spec_` (the network solved: temperature and width applied), `attention_` (the layers
    used), `saddle_` (`Saddle`; None in the GP limit), `U1_` (H, H), `xi_` (P, N0, H) training path features,
    `y_` (P,) training targets, `n_features_in_`.

    Targets are any real numbers (Gaussian likelihood of variance T). `predict(X)` returns the predictor mean
    (P*,), `predict_distribution(X)` `Prediction(mean, var)`, `score(X, y)` the R^2 of the mean. The network
    has no bias: centre y (e.g. with `TransformedTargetRegressor`) when its mean is far from 0.
    """

    def fit(self, X, y) -> "AttentionPathsRegressor":
        """X: (P, N0, T) or (P, n_features) training inputs; y: (P,) real targets."""
        X, y = validate_data(self, X, y, allow_nd=True, dtype=np.float64, y_numeric=True)
        return self._fit_targets(X, np.asarray(y, dtype=np.float64))

    def predict(self, X) -> np.ndarray:
        """Predictor mean on X (P*, N0, T) or (P*, n_features): (P*,)."""
        return self.predict_distribution(X).mean


class AttentionPathsClassifier(ClassifierMixin, _AttentionPathsEstimator):
    """Binary classifier: the theory fitted on labels mapped to -1 (`classes_[0]`) and +1 (`classes_[1]`).

    This is how the paper classifies: Gaussian-likelihood regression on +-1 labels, class = sign of the
    predictor mean. Parameters and fitted attributes are those of `AttentionPathsRegressor`, plus `classes_`
    (2,), the sorted labels; `y_` holds the +-1 targets.

    * `decision_function(X)`: the predictor mean (P*,); > 0 means `classes_[1]`.
    * `predict(X)`: `classes_[1]` where the mean is > 0, else `classes_[0]`.
    * `predict_proba(X)`: (P*, 2); column 1 is P(f(x*) > 0) = Phi(mean / sqrt(var)), the posterior probability
      that the network's output is positive, i.e. the fraction of networks drawn from the posterior (as the
      samplers draw them) that vote `classes_[1]`. The likelihood variance T is NOT added to var: T is the
      regression device that turns +-1 labels into a posterior, not a noise the labels carry, and a class is
      decided by the network's output, not by a noisy copy of it. With this choice the mean of predict_proba
      at the true class is `gaussian_accuracy`.
    * `score(X, y)`: accuracy.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def fit(self, X, y) -> "AttentionPathsClassifier":
        """X: (P, N0, T) or (P, n_features) training inputs; y: (P,) labels of exactly two classes."""
        X, y = validate_data(self, X, y, allow_nd=True, dtype=np.float64)
        check_classification_targets(y)
        kind = type_of_target(y, input_name="y")
        classes, encoded = np.unique(y, return_inverse=True)
        shown = f"{classes[:5].tolist()}{', ...' if classes.size > 5 else ''}"
        if kind != "binary":
            raise ValueError(f"Only binary classification is supported. The type of the target is {kind}: y holds "
                             f"{classes.size} classes {shown}")
        if classes.size != 2:
            raise ValueError(f"y must hold 2 classes to train a binary classifier; got 1 class {shown}")
        self.classes_ = classes
        return self._fit_targets(X, 2.0 * encoded.astype(np.float64) - 1.0)

    def decision_function(self, X) -> np.ndarray:
        """Predictor mean on X: (P*,); positive for `classes_[1]`."""
        return self.predict_distribution(X).mean

    def predict(self, X) -> np.ndarray:
        """Class labels (P*,): `classes_[1]` where the predictor mean is > 0, else `classes_[0]`."""
        positive = self.decision_function(X) > 0  # first: it raises NotFittedError before classes_ is read
        return self.classes_[positive.astype(int)]

    def predict_proba(self, X) -> np.ndarray:
        """(P*, 2): [1 - p, p] with p = Phi(mean / sqrt(var)) = P(f(x*) > 0) under the Gaussian predictive."""
        mean, var = self.predict_distribution(X)
        # var = 0 (a test input the training set pins down): the sign of the mean decides, as the limit does
        p = norm.cdf(mean / np.sqrt(np.maximum(var, 1e-300)))
        return np.column_stack([1.0 - p, p])
