"""Posterior sampling of the network's weights: exact blocked Gibbs, NumPyro NUTS reference, summaries, files."""

from attnpaths._src.sampling.diagnostics import SampleSummary, autocorrelation_time, summarize
from attnpaths._src.sampling.gibbs import (
    BlockedGibbs,
    GibbsState,
    LinearBlock,
    PosteriorDraws,
    gibbs_draws,
    linear_blocks,
    run_gibbs,
)
from attnpaths._src.sampling.nuts import network_model, nuts_draws, run_nuts

__all__ = [
    "BlockedGibbs",
    "GibbsState",
    "LinearBlock",
    "PosteriorDraws",
    "SampleSummary",
    "autocorrelation_time",
    "gibbs_draws",
    "linear_blocks",
    "network_model",
    "nuts_draws",
    "run_gibbs",
    "run_nuts",
    "summarize",
]
