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

# Imports and __all__ follow the theory: spec -> attention -> paths -> kernels -> training data (routes) ->
# order parameters, action and solver -> predictor -> analysis, then the estimator, the network and its posterior
# samplers, and the compilation cache; sorted in each group.
from attnpaths._src.spec import NetworkSpec, path_labels  # noqa: E402
from attnpaths._src.attention import (BilinearHeads, ExampleBound, GivenAttention, Heads, QKHeads,  # noqa: E402
                                      attention_matrices, head_types, make_heads, register_heads,
                                      unregister_heads)
from attnpaths._src.paths import path_features, path_token_weights, token_readout  # noqa: E402
from attnpaths._src.kernels import gp_kernel, kernel_diagonal, path_kernels, renormalized_kernel  # noqa: E402
from attnpaths._src.routes import ExampleData, GramStatistics, training_data  # noqa: E402
from attnpaths._src.statistics import gram_statistics  # noqa: E402
from attnpaths._src.order import gp_order, gp_scalar_order  # noqa: E402
from attnpaths._src.action import action, energy, entropy, scalar_order_parameter  # noqa: E402
from attnpaths._src.saddle import Saddle, solve_saddle, solve_widths  # noqa: E402
from attnpaths._src.predictor import (Prediction, accuracy, bias_error, gaussian_accuracy,  # noqa: E402
                                      predict)
from attnpaths._src.analysis import (Alignment, HeadScores, format_order_parameter, head_scores,  # noqa: E402
                                     pc_alignment)
from attnpaths._src.estimator import AttentionPathsClassifier, AttentionPathsRegressor  # noqa: E402
from attnpaths._src.network import Weights, forward, sampled_order_parameter  # noqa: E402
from attnpaths._src.sampling import (BlockedGibbs, NUTSSampler, PosteriorDraws, SampleSummary,  # noqa: E402
                                     Sampler, load_draws, register_sampler, run_sampler, sample,
                                     sample_from_features, sampler_names, summarize)
from attnpaths._src.compile_cache import default_cache_dir, set_compile_cache  # noqa: E402
from attnpaths._src.version import __version__  # noqa: E402,F401

__all__ = [
    # spec (A)
    "NetworkSpec",
    "path_labels",
    # attention (A.3): the Heads protocol, built-in heads, the head-type registry
    "BilinearHeads",
    "ExampleBound",
    "GivenAttention",
    "Heads",
    "QKHeads",
    "attention_matrices",
    "head_types",
    "make_heads",
    "register_heads",
    "unregister_heads",
    # paths (B.1)
    "path_features",
    "path_token_weights",
    "token_readout",
    # kernels (B.2, B.7)
    "gp_kernel",
    "kernel_diagonal",
    "path_kernels",
    "renormalized_kernel",
    # training data: the example (P x P) and Gram (D x D) routes
    "ExampleData",
    "GramStatistics",
    "gram_statistics",
    "training_data",
    # order parameters, action and solver (B.3-B.6, C.1)
    "Saddle",
    "action",
    "energy",
    "entropy",
    "gp_order",
    "gp_scalar_order",
    "scalar_order_parameter",
    "solve_saddle",
    "solve_widths",
    # predictor (B.6)
    "Prediction",
    "accuracy",
    "bias_error",
    "gaussian_accuracy",
    "predict",
    # analysis (D.4, E.6)
    "Alignment",
    "HeadScores",
    "format_order_parameter",
    "head_scores",
    "pc_alignment",
    # scikit-learn estimators
    "AttentionPathsClassifier",
    "AttentionPathsRegressor",
    # the network and posterior sampling (A, C.2)
    "BlockedGibbs",
    "NUTSSampler",
    "PosteriorDraws",
    "SampleSummary",
    "Sampler",
    "Weights",
    "forward",
    "load_draws",
    "register_sampler",
    "run_sampler",
    "sample",
    "sample_from_features",
    "sampled_order_parameter",
    "sampler_names",
    "summarize",
    # compilation cache
    "default_cache_dir",
    "set_compile_cache",
    # tasks: the task / preset / data-source registries are added here when they land
]
