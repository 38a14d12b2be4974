"""`BlockedGibbs`: the exact blocked Gibbs sampler (spec C.2), a `Sampler` built on the block conditionals of
gibbs.py (one sweep is `gibbs._sweep`)."""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from attnpaths._src.checks import as_count, as_labels, check_sampling_temperature
from attnpaths._src.network import Weights, block_names, check_weights, int_widths, sample_prior
from attnpaths._src.paths import check_features, path_features
from attnpaths._src.sampling.factored import factored_sweep, moments_fit, path_moments, routes
from attnpaths._src.sampling.gibbs import GibbsState, _sweep, path_gram
from attnpaths._src.spec import NetworkSpec


# ---------------------------------------------------------------------------------------------------------------
# the sampler
# ---------------------------------------------------------------------------------------------------------------


@jax.tree_util.register_pytree_node_class
class BlockedGibbs:
    """Exact blocked Gibbs sampler of the weight posterior, several chains at once (vmapped, jitted).

    Usage (a `Sampler`: pure init/step on an explicit state, like an optax/numpyro kernel)::

        g = BlockedGibbs(spec, attention_train, x_train, y_train)
        state = g.init(jax.random.PRNGKey(0), n_chains=4)
        state = g.step(state)            # one sweep of every chain
        state = g.advance(state, 10)     # ten sweeps

    `attnpaths.sample(..., method="gibbs")` runs it with the shared driver (storage, resume, time box).

    Args:
      spec: the network; needs integer widths and T > 0.
      attention: one entry per layer (`BilinearHeads`, `QKHeads` or an array (P, H_l, T, T) for x).
      x: (P, N0, T) training inputs.
      y: (P,) training targets.
      sample_blocks: names of the blocks to redraw ('V0', 'V1', ..., 'VL', 'a'); the others stay at their
        initial value (e.g. ('a',) gives Bayesian linear regression on fixed features). Default: all.
      reduce: draw every block by its cheapest exact route: the path-moment route of factored.py (inputs carried
        as maps of the fixed path features, no P^2 or P^3 work), or r x r algebra when the data sees r < P of
        its weights (`reduced_update`), else P x P; chosen from the shapes. False: always P x P, inputs pushed
        through every block (the reference route; the same draws up to rounding, slower).

    Cost of one sweep of one chain with reduce=True: see factored.py (per block N_k (R N0)^2 + 2 (H_b S')^2
    (R N0)^3 + r^3/6 on the path-moment route, R N0 = the block's input dimension). The previous algorithm
    (`_legacy(sampler)`, kept for the benchmarks) costs (flops; S_k = H_k+1 ... H_L paths above block k, D_k its
    weights, r_k = H_k min(S_k, N_k+1) N_k): noise sum_k (D_k + P); V0: H^2 P^2 (path Gram) + P^3/3; block k >= 1:
    P r_k^2 + r_k^3/3 if r_k < P, else P^2 H_k S_k N_k + P^3/3; propagation through the blocks
    sum_k P S_k D_k; suffix weights sum_k S_k D_k. Memory: the weights, P H N per layer, P^2 (and the path
    Gram H^2 P^2 when it fits in 128 MB); the path-moment route keeps the path moments (H N0)^2 when they fit
    in 128 MB and carries the maps M (N_k, R N0) instead of the P inputs.
    """

    def __init__(self, spec: NetworkSpec, attention, x, y, sample_blocks: Sequence[str] | None = None,
                 reduce: bool = True):
        xi = path_features(spec, attention, x)
        self._setup(spec, xi, y, sample_blocks, reduce)

    @classmethod
    def from_features(cls, spec: NetworkSpec, xi, y, sample_blocks: Sequence[str] | None = None,
                      reduce: bool = True) -> "BlockedGibbs":
        """The sampler from path features xi (P, N0, H) (`path_features`) instead of attention and x."""
        self = cls.__new__(cls)
        self._setup(spec, check_features("xi", xi, spec.n_paths), y, sample_blocks, reduce)
        return self

    def _setup(self, spec, xi, y, sample_blocks, reduce):
        if not isinstance(reduce, bool):
            raise ValueError(f"reduce must be True or False; got {reduce!r}")
        self.reduce = reduce
        check_sampling_temperature(spec)
        int_widths(spec)
        self.spec = spec
        self.xi = xi
        self.y = jnp.asarray(as_labels("y", y, xi.shape[0]))
        names = block_names(spec)
        if sample_blocks is None:
            sample_blocks = names
        unknown = [b for b in sample_blocks if b not in names]
        if unknown or len(sample_blocks) == 0:
            raise ValueError(f"sample_blocks must be a non-empty subset of {names}; got {tuple(sample_blocks)}")
        self.sample_blocks = tuple(b for b in names if b in sample_blocks)
        self.update = tuple(b in sample_blocks for b in names)
        self.C0 = path_gram(xi)
        P, n0, H = (int(n) for n in xi.shape)
        self.route = routes(spec, P, n0, self.C0 is not None, moments_fit(H, n0)) if reduce else None
        self.moments = path_moments(xi) if self.route is not None and "q" in self.route else None

    # a pytree: the arrays are arguments of the compiled sweeps, the settings their static part
    def tree_flatten(self):
        return (self.xi, self.y, self.C0, self.moments), (self.spec, self.sample_blocks, self.update, self.reduce,
                                                          self.route)

    @classmethod
    def tree_unflatten(cls, aux, children):
        self = cls.__new__(cls)
        self.xi, self.y, self.C0, self.moments = children
        self.spec, self.sample_blocks, self.update, self.reduce, self.route = aux
        return self

    @property
    def n_examples(self) -> int:
        return int(self.xi.shape[0])

    @property
    def settings(self) -> dict:
        return {"sample_blocks": list(self.sample_blocks), "reduce": self.reduce}

    def init(self, key, n_chains: int = 1, n_warmup: int = 0, weights: Weights | None = None) -> GibbsState:
        """Start n_chains chains from the prior, or from `weights` (unbatched: the same for every chain, or with
        a leading chain axis of length n_chains). key: a PRNG key or an int seed. n_warmup is not needed."""
        n_chains = as_count("n_chains", n_chains)
        if isinstance(key, (int, np.integer)):
            key = jax.random.PRNGKey(int(key))
        n0 = int(self.xi.shape[1])
        k_init, k_chains = jax.random.split(key)
        if weights is None:
            weights = sample_prior(self.spec, n0, k_init, (n_chains,))
        elif np.ndim(weights.V0) == 2:
            weights = check_weights(self.spec, weights, n0)
            weights = jax.tree_util.tree_map(lambda w: jnp.broadcast_to(w, (n_chains,) + w.shape), weights)
        else:
            weights = check_weights(self.spec, weights, n0, (n_chains,))
        return GibbsState(weights, jax.random.split(k_chains, n_chains), jnp.asarray(0, dtype=jnp.int64))

    def step(self, state: GibbsState) -> GibbsState:
        """One sweep of every chain (pure; jit it, or use `advance` for many)."""
        gate = state.sweeps >= 0  # always True, but traced (see `_normal`)
        if self.route is None:
            sweep = jax.vmap(lambda k, w: _sweep(self.spec, self.update, self.xi, self.y, k, w, gate, self.C0,
                                                 self.reduce))
        else:
            sweep = jax.vmap(lambda k, w: factored_sweep(self.spec, self.update, self.xi, self.y, k, w, gate,
                                                         self.C0, self.moments, self.route))
        split = jax.vmap(jax.random.split)(state.key)
        return GibbsState(sweep(split[:, 1], state.weights), split[:, 0], state.sweeps + 1)

    def weights(self, state: GibbsState) -> Weights:
        return state.weights

    def advance(self, state: GibbsState, n_sweeps: int) -> GibbsState:
        """n_sweeps sweeps of every chain (one compiled loop; n_sweeps is traced, so it does not recompile)."""
        return _advance(self, state, jnp.asarray(n_sweeps, dtype=jnp.int64))


def _legacy(sampler: BlockedGibbs) -> BlockedGibbs:
    """The same sampler with the sweep before issue 18 (inputs pushed through every block, r x r or P x P
    conditionals): the same draws up to rounding; kept to measure old against new in one run."""
    children, aux = sampler.tree_flatten()
    return BlockedGibbs.tree_unflatten(aux[:-1] + (None,), children[:-1] + (None,))


@jax.jit
def _advance(gibbs: BlockedGibbs, state: GibbsState, n) -> GibbsState:
    return jax.lax.fori_loop(0, n, lambda _, s: gibbs.step(s), state)
