"""The result of every sampler: posterior draws of the quantities the theory predicts (spec C.2)."""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np


class PosteriorDraws(NamedTuple):
    """Posterior draws of f(x_test) and of the order parameter's integrand; axis order chain x draw x ...

    f_test: (C, S, P_test) network output on the test inputs for every draw.
    U: (C, S, H, H) w_hat w_hat^T / N_1 for every draw; its mean over draws is the sampled U_1 (spec C.2).
    sweeps_per_draw: sampler steps (Gibbs sweeps, NUTS transitions) between consecutive draws (the thinning).
    seconds: wall time of the sampling, warm-up included, compilation excluded where it can be.
    complete: False when the run stopped at its time budget before all requested draws were made (the draws
      made so far are kept; resume the run to make the rest).
    """

    f_test: np.ndarray
    U: np.ndarray
    sweeps_per_draw: int
    seconds: float
    complete: bool = True

    @property
    def n_chains(self) -> int:
        return int(self.f_test.shape[0])

    @property
    def n_draws(self) -> int:
        return int(self.f_test.shape[1])

    def to_arviz(self):
        """The draws as an ArviZ `InferenceData` (posterior group, dims chain x draw x ...).

        Variables: ``f_test`` (chain, draw, test_point) and ``U`` (chain, draw, path, path_). Needs ArviZ
        (``pip install 'attnpaths[arviz]'``); ``arviz.summary(draws.to_arviz())`` then gives ESS and R-hat.
        """
        try:
            with warnings.catch_warnings():  # ArviZ 0.2x announces its 1.0 refactor on import
                warnings.simplefilter("ignore", FutureWarning)
                import arviz as az
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError("PosteriorDraws.to_arviz needs ArviZ: pip install 'attnpaths[arviz]'") from None
        H = self.U.shape[-1]
        return az.from_dict(
            posterior={"f_test": np.asarray(self.f_test), "U": np.asarray(self.U)},
            coords={"test_point": np.arange(self.f_test.shape[-1]), "path": np.arange(H), "path_": np.arange(H)},
            dims={"f_test": ["test_point"], "U": ["path", "path_"]},
            attrs={"sweeps_per_draw": int(self.sweeps_per_draw), "sampling_seconds": float(self.seconds)},
        )
