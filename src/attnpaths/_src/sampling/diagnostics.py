"""Posterior summaries with Monte Carlo errors: the sampled predictor and order parameter (spec C.2).

Every input array is ordered chain x draw x ... (as `numpyro.diagnostics`). The effective sample size (ESS) is
Geyer's initial monotone sequence estimator pooled over chains (`numpyro.diagnostics.effective_sample_size`,
Stan reference manual); R-hat is the split Gelman-Rubin statistic. The Monte Carlo standard error of a mean is
sd / sqrt(ESS); the integrated autocorrelation time is (chains x draws) / ESS, in draws, times the thinning to
give it in sweeps. `convergence_warning` is the one line every printed R-hat or ESS that fails the usual
thresholds (R-hat <= 1.01, ESS >= 100; Vehtari et al. 2021) carries.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpyro.diagnostics import effective_sample_size, split_gelman_rubin

from attnpaths._src.sampling.draws import PosteriorDraws


class SampleSummary(NamedTuple):
    """Summary of `PosteriorDraws` (C chains x S draws).

    mean, mean_se: (P_test,) sampled predictor mean over draws and its Monte Carlo standard error.
    var, var_se: (P_test,) sampled predictor variance over draws (unbiased) and its Monte Carlo standard error.
    U, U_se: (H, H) sampled order parameter U_1 = <w_hat w_hat^T> / N_1 and its standard error.
    rhat_mean, ess_mean, iat_mean: (P_test,) split R-hat, ESS and integrated autocorrelation time (in sweeps) of
      f(x_test).
    rhat_U, ess_U, iat_U: (H, H) the same for the entries of w_hat w_hat^T / N_1.
    n_chains, n_draws: C and S.
    """

    mean: np.ndarray
    mean_se: np.ndarray
    var: np.ndarray
    var_se: np.ndarray
    U: np.ndarray
    U_se: np.ndarray
    rhat_mean: np.ndarray
    ess_mean: np.ndarray
    iat_mean: np.ndarray
    rhat_U: np.ndarray
    ess_U: np.ndarray
    iat_U: np.ndarray
    n_chains: int
    n_draws: int


def ess(x: np.ndarray) -> np.ndarray:
    """Effective sample size of x (chain, draw, ...) -> (...); NaN where x does not vary."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(effective_sample_size(x))


def rhat(x: np.ndarray) -> np.ndarray:
    """Split R-hat of x (chain, draw, ...) -> (...). Needs draw >= 4."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(split_gelman_rubin(x))


def mean_and_se(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over (chain, draw), its standard error sd/sqrt(ESS), and the ESS."""
    x = np.asarray(x, dtype=np.float64)
    n = ess(x)
    sd = x.reshape((-1,) + x.shape[2:]).std(axis=0, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.where(sd > 0, sd / np.sqrt(n), 0.0)
    return x.mean(axis=(0, 1)), se, n


def summarize(draws: PosteriorDraws) -> SampleSummary:
    """Sampled predictor mean/variance and order parameter, with standard errors, R-hat, ESS and IAT."""
    f = np.asarray(draws.f_test, dtype=np.float64)
    U = np.asarray(draws.U, dtype=np.float64)
    if f.ndim != 3 or U.ndim != 4 or f.shape[:2] != U.shape[:2]:
        raise ValueError(f"draws must hold f_test (C, S, P_test) and U (C, S, H, H) with the same C, S; got "
                         f"f_test {f.shape}, U {U.shape}")
    C, S = f.shape[:2]
    if S < 4:
        raise ValueError(f"summaries need at least 4 draws per chain (split R-hat); got {S}")
    mean, mean_se, ess_f = mean_and_se(f)
    dev2 = (f - mean) ** 2 * (C * S) / (C * S - 1)  # its mean is the unbiased variance
    var, var_se, _ = mean_and_se(dev2)
    U_mean, U_se, ess_U = mean_and_se(U)
    with np.errstate(invalid="ignore", divide="ignore"):
        iat_f = C * S / ess_f * draws.sweeps_per_draw
        iat_U = C * S / ess_U * draws.sweeps_per_draw
    return SampleSummary(mean, mean_se, var, var_se, U_mean, U_se, rhat(f), ess_f, iat_f, rhat(U), ess_U, iat_U,
                         C, S)


def autocorrelation_time(x: np.ndarray, sweeps_per_draw: int = 1) -> np.ndarray:
    """Integrated autocorrelation time (chains x draws / ESS) of x (chain, draw, ...) in sweeps."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return x.shape[0] * x.shape[1] / ess(x) * sweeps_per_draw


RHAT_LIMIT = 1.01
"""Split R-hat above this: the chains have not mixed (Vehtari, Gelman, Simpson, Carpenter, Buerkner 2021)."""
ESS_LIMIT = 100.0
"""Effective sample size below this: the Monte Carlo errors and R-hat itself are unreliable (same reference)."""


SAMPLE_OPTIONS = ("--n-samples", "--n-warmup", "--n-chains")
"""How the commands name the draws per chain, the warm-up and the chains (the advice of `convergence_warning`)."""


def convergence_warning(max_rhat: float, min_ess: float = math.inf, where: str = "",
                        options: tuple[str, str, str] = SAMPLE_OPTIONS) -> str:
    """The warning line for a worst R-hat above `RHAT_LIMIT` or a smallest ESS below `ESS_LIMIT`, saying what to
    do; '' when both pass (NaN, a quantity that did not vary, passes).

    where: names the run, e.g. "N=10"; options: the names of the settings of the draws per chain, the warm-up and
    the chains where the warning is printed (default the `--n-samples`, `--n-warmup`, `--n-chains` options).
    """
    draws, warmup, chains = options
    problems = []
    if max_rhat > RHAT_LIMIT:
        problems.append(f"R-hat {max_rhat:.3g} > {RHAT_LIMIT} (the chains disagree)")
    if min_ess < ESS_LIMIT:
        problems.append(f"ESS {min_ess:.3g} < {ESS_LIMIT:g} (too few effective draws)")
    if not problems:
        return ""
    longer = f", a longer warm-up ({warmup})" if max_rhat > RHAT_LIMIT else ""
    return (f"  WARNING{' ' + where if where else ''}: {' and '.join(problems)}; run more draws per chain "
            f"({draws}){longer} and more chains ({chains})")
