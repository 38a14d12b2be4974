"""attnpaths: the statistical mechanics theory of Bayesian deep multi-head attention networks.

Tiberi, Mignacco, Irie, Sompolinsky, "Dissecting the Interplay of Attention Paths in a Statistical Mechanics
Theory of Transformers", NeurIPS 2024 (arXiv:2405.15926).

Importing attnpaths turns on JAX's float64 mode (``jax_enable_x64``): the theory's log-determinants and
solves are meaningless in float32.
"""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

from attnpaths._src.compile_cache import configure_default_compile_cache as _configure_cache  # noqa: E402

_configure_cache()

from attnpaths._src.action import action, energy, entropy, scalar_order_parameter  # noqa: E402
from attnpaths._src.analysis import (Alignment, HeadScores, format_order_parameter, head_scores,  # noqa: E402
                                     pc_alignment)
from attnpaths._src.attention import BilinearHeads, QKHeads, attention_matrices  # noqa: E402
from attnpaths._src.estimator import AttentionPathsRegressor  # noqa: E402
from attnpaths._src.kernels import gp_kernel, kernel_diagonal, path_kernels, renormalized_kernel  # noqa: E402
from attnpaths._src.order import gp_order, gp_scalar_order  # noqa: E402
from attnpaths._src.paths import path_features, path_token_weights, token_readout  # noqa: E402
from attnpaths._src.predictor import (Prediction, accuracy, bias_error, gaussian_accuracy,  # noqa: E402
                                      predict)
from attnpaths._src.compile_cache import default_cache_dir, set_compile_cache  # noqa: E402
from attnpaths._src.routes import ExampleData, GramStatistics, training_data  # noqa: E402
from attnpaths._src.saddle import Saddle, solve_saddle, solve_widths  # noqa: E402
from attnpaths._src.statistics import gram_statistics  # noqa: E402
from attnpaths._src.spec import NetworkSpec, path_labels  # noqa: E402
from attnpaths._src.network import Weights, forward, sampled_order_parameter  # noqa: E402
from attnpaths._src.sampling.diagnostics import SampleSummary, summarize  # noqa: E402
from attnpaths._src.sampling.gibbs import BlockedGibbs, PosteriorDraws, gibbs_draws, run_gibbs  # noqa: E402
from attnpaths._src.sampling.nuts import nuts_draws, run_nuts  # noqa: E402

__all__ = [
    "ExampleData",
    "GramStatistics",
    "default_cache_dir",
    "gram_statistics",
    "set_compile_cache",
    "training_data",
    "Alignment",
    "AttentionPathsRegressor",
    "BilinearHeads",
    "BlockedGibbs",
    "PosteriorDraws",
    "SampleSummary",
    "Weights",
    "format_order_parameter",
    "forward",
    "gibbs_draws",
    "nuts_draws",
    "run_gibbs",
    "run_nuts",
    "sampled_order_parameter",
    "summarize",
    "HeadScores",
    "Prediction",
    "Saddle",
    "accuracy",
    "action",
    "bias_error",
    "energy",
    "entropy",
    "gaussian_accuracy",
    "gp_kernel",
    "gp_order",
    "gp_scalar_order",
    "head_scores",
    "kernel_diagonal",
    "path_kernels",
    "pc_alignment",
    "predict",
    "renormalized_kernel",
    "scalar_order_parameter",
    "solve_saddle",
    "solve_widths",
    "QKHeads",
    "NetworkSpec",
    "attention_matrices",
    "path_features",
    "path_labels",
    "path_token_weights",
    "token_readout",
]
__version__ = "0.1.0"
