"""Posterior sampling of the network's weights: one interface (`sample`), a shared draw driver, a registry of
methods (exact blocked Gibbs, NumPyro NUTS, yours), summaries and streamed results files."""

from attnpaths._src.sampling.api import sample, sample_from_features
from attnpaths._src.sampling.diagnostics import SampleSummary, autocorrelation_time, summarize
from attnpaths._src.sampling.draws import PosteriorDraws
from attnpaths._src.sampling.driver import run_sampler
from attnpaths._src.sampling.blocked_gibbs import BlockedGibbs
from attnpaths._src.sampling.gibbs import GibbsState, LinearBlock, linear_blocks
from attnpaths._src.sampling.nuts import NUTSSampler, network_model
from attnpaths._src.sampling.protocol import Sampler, make_sampler, register_sampler, sampler_names
from attnpaths._src.sampling.store import load_draws

__all__ = [
    "BlockedGibbs",
    "GibbsState",
    "LinearBlock",
    "NUTSSampler",
    "PosteriorDraws",
    "SampleSummary",
    "Sampler",
    "autocorrelation_time",
    "linear_blocks",
    "load_draws",
    "make_sampler",
    "network_model",
    "register_sampler",
    "run_sampler",
    "sample",
    "sample_from_features",
    "sampler_names",
    "summarize",
]
