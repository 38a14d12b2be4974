"""attnpaths: the statistical mechanics theory of Bayesian deep multi-head attention networks.

Tiberi, Mignacco, Irie, Sompolinsky, "Dissecting the Interplay of Attention Paths in a Statistical Mechanics
Theory of Transformers", NeurIPS 2024 (arXiv:2405.15926).

Importing attnpaths turns on JAX's float64 mode (``jax_enable_x64``): the theory's log-determinants and
solves are meaningless in float32.
"""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

from attnpaths._src.attention import BilinearHeads, QKHeads, attention_matrices  # noqa: E402
from attnpaths._src.paths import path_features, path_token_weights, token_readout  # noqa: E402
from attnpaths._src.spec import NetworkSpec, path_labels  # noqa: E402

__all__ = [
    "BilinearHeads",
    "QKHeads",
    "NetworkSpec",
    "attention_matrices",
    "path_features",
    "path_labels",
    "path_token_weights",
    "token_readout",
]
__version__ = "0.1.0"
