"""The result of every sampler: posterior draws of the quantities the theory predicts (spec C.2)."""

from __future__ import annotations

import warnings
from typing import NamedTuple, Sequence

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

    def to_arviz(self, path_names: Sequence[str] | None = None):
        """The draws as an ArviZ `InferenceData`, named for `az.summary`, `az.plot_trace` and `az.plot_forest`.

        Posterior variables (dims chain x draw x ...):
          ``f_test`` (chain, draw, test_example): the network's output on each test input;
          ``U_1`` (chain, draw, path_i, path_j): w_hat w_hat^T / N_1, whose posterior mean is the sampled order
          parameter U_1 of the first layer (the one level the samplers record), its path coordinates labelled by
          `path_names`.

        Args:
          path_names: the H path labels, e.g. `attnpaths.path_labels(spec.heads)` ("1,2": head 1 of layer 1,
            head 2 of layer 2); default "path 1", ..., "path H".
        Needs ArviZ (``pip install 'attnpaths[arviz]'``); ``az.summary(draws.to_arviz(names))`` gives the
        posterior means with their ESS and R-hat.
        """
        try:
            with warnings.catch_warnings():  # ArviZ 0.2x announces its 1.0 refactor on import
                warnings.simplefilter("ignore", FutureWarning)
                import arviz as az
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError("PosteriorDraws.to_arviz needs ArviZ: pip install 'attnpaths[arviz]'") from None
        H = self.U.shape[-1]
        names = [f"path {k + 1}" for k in range(H)] if path_names is None else [str(n) for n in path_names]
        if len(names) != H or len(set(names)) != H:
            raise ValueError(f"path_names must be {H} distinct labels (one per path of U); got {path_names!r}")
        idata = az.from_dict(
            posterior={"f_test": np.asarray(self.f_test), "U_1": np.asarray(self.U)},
            coords={"test_example": np.arange(self.f_test.shape[-1]), "path_i": names, "path_j": names},
            dims={"f_test": ["test_example"], "U_1": ["path_i", "path_j"]},
            attrs={"sweeps_per_draw": int(self.sweeps_per_draw), "sampling_seconds": float(self.seconds),
                   "complete": int(self.complete)},
        )
        post = idata.posterior
        post["f_test"].attrs.update(long_name="network output f(x) on the test input", units="1")
        post["U_1"].attrs.update(long_name="w_hat w_hat^T / N_1 (its mean: the order parameter U_1)", units="1")
        post["test_example"].attrs.update(long_name="test input", units="1")
        post["path_i"].attrs.update(long_name="attention path (row of U_1)", units="1")
        post["path_j"].attrs.update(long_name="attention path (column of U_1)", units="1")
        return idata
