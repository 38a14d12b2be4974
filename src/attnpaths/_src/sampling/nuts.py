"""Reference sampler: NumPyro NUTS on the same weight posterior (spec C.2, as the authors' `bayesian_model`).

A plain NumPyro model: every weight block has its Gaussian prior (spec A.7), the attention is precomputed and
enters as constants (through the path features xi, spec B.1; `network.path_forward` equals the token-level
`network.forward`), and y ~ Normal(f, sqrt(T)). Default NUTS settings (target_accept_prob 0.8).

`NUTSSampler` drives NumPyro's own kernel through its public init/sample contract (`numpyro.infer.NUTS.init`,
`.sample`), the chains one after another in one compiled program, so that NUTS gets the shared driver:
chunks, storage, exact resume (the whole `HMCState`, adaptation included, is the stored chain state), time box.
"""

from __future__ import annotations

import inspect
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import NUTS

from attnpaths._src.checks import as_count, as_labels, check_sampling_temperature
from attnpaths._src.network import Weights, int_widths, path_forward, path_input_weights, weight_shapes
from attnpaths._src.paths import check_features
from attnpaths._src.spec import NetworkSpec
from attnpaths._src.store import data_hash


def _weight_sites(spec: NetworkSpec, n0: int) -> Weights:
    """The sample sites 'V0', 'V1', ..., 'VL', 'a' with their Gaussian priors (spec A.7)."""
    shapes = weight_shapes(spec, n0)
    var = spec.variances

    def block(name, shape, s):
        return numpyro.sample(name, dist.Normal(0.0, math.sqrt(s)).expand(shape).to_event(len(shape)))

    V0 = block("V0", shapes.V0, var[0])  # in the order of the network (NumPyro's init draws follow it)
    V = tuple(block(f"V{l + 1}", shapes.V[l], var[l + 1]) for l in range(spec.n_layers))
    return Weights(V0, V, block("a", shapes.a, var[-1]))


def network_model(spec: NetworkSpec, xi: jnp.ndarray, y: jnp.ndarray | None = None) -> None:
    """NumPyro model of the Bayesian network: sites 'V0', 'V1', ..., 'VL', 'a' and the observed 'y'.

    xi: (P, N0, H) path features of the training inputs (the precomputed attention); y: (P,) or None.
    """
    f = path_forward(spec, _weight_sites(spec, xi.shape[1]), xi)
    numpyro.sample("y", dist.Normal(f, math.sqrt(spec.temperature)), obs=y)


def _flat_model(spec: NetworkSpec, n0: int, xi_flat: jnp.ndarray, y: jnp.ndarray | None = None) -> None:
    """`network_model` on path features laid out as xi_flat (P, H N0) (path outermost), so that f is one
    matrix-vector product per gradient: with xi (P, N0, H) as the argument, XLA transposed it in every one of
    NUTS's ~1000 gradient evaluations per transition (5x slower)."""
    f = xi_flat @ path_input_weights(spec, _weight_sites(spec, n0)).reshape(-1)
    numpyro.sample("y", dist.Normal(f, math.sqrt(spec.temperature)), obs=y)


def _site_dict(spec: NetworkSpec, weights: Weights) -> dict:
    out = {"V0": weights.V0, "a": weights.a}
    out.update({f"V{l + 1}": V for l, V in enumerate(weights.V)})
    return out


_NUTS_OPTIONS = tuple(p for p in inspect.signature(NUTS).parameters if p not in ("model", "potential_fn"))


@jax.tree_util.register_pytree_node_class
class NUTSSampler:
    """NumPyro NUTS on the weight posterior as a `Sampler` (several chains in one compiled program).

    Args:
      spec: the network; needs integer widths and T > 0.
      xi: (P, N0, H) path features of the training inputs.
      y: (P,) training targets.
      **nuts_options: options of `numpyro.infer.NUTS` (target_accept_prob, max_tree_depth, dense_mass, ...).
    """

    def __init__(self, spec: NetworkSpec, xi, y, **nuts_options):
        check_sampling_temperature(spec)
        int_widths(spec)
        unknown = sorted(set(nuts_options) - set(_NUTS_OPTIONS))
        if unknown:
            raise ValueError(f"options {unknown} are not options of numpyro.infer.NUTS; it takes {_NUTS_OPTIONS}")
        self.spec = spec
        self.xi = check_features("xi", xi, spec.n_paths)
        self.y = jnp.asarray(as_labels("y", y, self.xi.shape[0]))
        self.xi_flat = jnp.transpose(self.xi, (0, 2, 1)).reshape(self.xi.shape[0], -1)
        self.options = tuple(sorted(nuts_options.items()))
        self.kernel = None  # the NumPyro kernel of the last `init` (its sample function depends on the chain count)
        self._inits = {}  # (key, n_chains, n_warmup, start) -> (kernel, state): init is pure, so repeated runs
        # of this sampler reuse its kernel and hence its compiled steps

    @classmethod
    def from_features(cls, spec: NetworkSpec, xi, y, **nuts_options) -> "NUTSSampler":
        """The same as the constructor (which already takes path features); for symmetry with BlockedGibbs."""
        return cls(spec, xi, y, **nuts_options)

    def tree_flatten(self):
        return (self.xi, self.y, self.xi_flat), (self.spec, self.options, self.kernel)

    @classmethod
    def tree_unflatten(cls, aux, children):
        self = cls.__new__(cls)
        self.xi, self.y, self.xi_flat = children
        self.spec, self.options, self.kernel = aux
        self._inits = {}
        return self

    @property
    def settings(self) -> dict:
        return {k: v if isinstance(v, (int, float, bool, str)) else repr(v) for k, v in self.options}

    def init(self, key, n_chains: int = 1, n_warmup: int = 0, weights: Weights | None = None):
        """NumPyro's `HMCState` of n_chains chains (a fresh kernel: its adaptation plans n_warmup steps).
        weights: a start (with a chain axis); default NumPyro's init strategy (uniform in [-2, 2])."""
        n_chains = as_count("n_chains", n_chains)
        n_warmup = as_count("n_warmup", n_warmup, 0)
        start = None if weights is None else data_hash(*jax.tree_util.tree_leaves(weights))
        memo = (np.asarray(key).tobytes(), n_chains, n_warmup, start)
        if memo not in self._inits:
            kernel = NUTS(partial(_flat_model, self.spec, int(self.xi.shape[1])), **dict(self.options))
            if weights is not None and np.ndim(weights.V0) == 2:
                weights = jax.tree_util.tree_map(lambda w: jnp.broadcast_to(w, (n_chains,) + w.shape), weights)
            states = []
            for c, k in enumerate(jax.random.split(key, n_chains)):  # one chain at a time: see `step`
                start_c = None if weights is None else _site_dict(self.spec, jax.tree_util.tree_map(
                    lambda w: w[c], weights))
                states.append(kernel.init(k, n_warmup, start_c, model_args=(self.xi_flat, self.y), model_kwargs={}))
            self._inits[memo] = (kernel, jax.tree_util.tree_map(lambda *x: jnp.stack(x), *states))
        self.kernel, state = self._inits[memo]
        return state

    def step(self, state):
        """One NUTS transition of every chain (warm-up adaptation while state.i < n_warmup).

        The chains run one after another inside the compiled program (`lax.map`), not vmapped: under vmap the
        `lax.cond`s of NUTS's tree building become selects that evaluate both branches, which made a transition
        ~20x slower on CPU.
        """
        if self.kernel is None:
            raise ValueError("NUTSSampler.step needs a state from NUTSSampler.init")
        return jax.lax.map(lambda s: self.kernel.sample(s, (self.xi_flat, self.y), {}), state)

    def weights(self, state) -> Weights:
        z = state.z
        return Weights(z["V0"], tuple(z[f"V{l + 1}"] for l in range(self.spec.n_layers)), z["a"])
