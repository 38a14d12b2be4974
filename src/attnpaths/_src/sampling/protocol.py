"""The sampler contract and the registry of sampling methods.

A sampler is a small object with pure init/step functions on an explicit state, like NumPyro's `MCMCKernel`
(`init`/`sample`) or an optax transformation: the shared driver (`driver.run_sampler`) does everything else
(chunks, storage, resume, progress, time box) for every method alike. A user's own method is one class:

    class MyMethod:
        def __init__(self, spec, xi, y, step_size=0.1): ...     # spec, xi (P, N0, H), y (P,) as attributes
        settings = property(lambda self: {"step_size": ...})   # JSON-able, recorded in results files
        def init(self, key, n_chains, n_warmup, weights=None): ...   # -> state (pytree, chain axis first)
        def step(self, state): ...                              # one transition of every chain (jittable)
        def weights(self, state): ...                           # -> Weights with a chain axis

    register_sampler("mine", MyMethod)
    attnpaths.sample(spec, heads, x, y, x_test, method="mine", options={"step_size": 0.2})

The driver compiles `step` with the sampler as an argument: a sampler registered as a JAX pytree (as the
built-in ones are) passes its arrays as arguments; any other object is treated as a static constant (hashed by
identity), which is fine for small data but embeds its arrays in the compiled program.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping, Protocol, runtime_checkable

import jax

from attnpaths._src.network import Weights
from attnpaths._src.spec import NetworkSpec
from attnpaths._src.registry import Registry

State = Any  # a pytree of arrays whose leaves have a leading chain axis


@runtime_checkable
class Sampler(Protocol):
    """What the driver needs from a posterior sampler of the network's weights.

    Attributes:
      spec: the network.
      xi: (P, N0, H) path features of the training inputs.
      y: (P,) training targets.
      settings: JSON-able dict of the method's options (part of a results file's identity).
    """

    spec: NetworkSpec
    xi: jax.Array
    y: jax.Array

    @property
    def settings(self) -> dict: ...

    def init(self, key: jax.Array, n_chains: int, n_warmup: int, weights: Weights | None = None) -> State:
        """Start n_chains chains (key: a PRNG key; weights: a start, unbatched or with a chain axis).
        n_warmup: steps the driver will run before the first draw (adaptive methods plan with it)."""

    def step(self, state: State) -> State:
        """One transition of every chain; pure and jittable."""

    def weights(self, state: State) -> Weights:
        """The network weights of every chain, with a leading chain axis."""


SamplerFactory = Callable[..., Sampler]
SAMPLERS: Registry[SamplerFactory] = Registry("sampler")
"""name -> factory(spec, xi, y, **options) -> Sampler; the command line's --method choices come from here."""


def register_sampler(name: str, factory: SamplerFactory | None = None, *, replace: bool = False):
    """Register `factory(spec, xi, y, **options) -> Sampler` under `name` (usable as a class decorator).

    A name already taken by another factory raises ValueError unless replace=True (the `Registry.register`
    rule, as for head types and presets); a re-run notebook cell that defines the class again passes it.
    """
    if factory is None:  # the decorator form (it decorates a class or a function: callable)
        return SAMPLERS.register(name, replace=replace)
    if not callable(factory):
        raise ValueError(f"sampler {name!r} must be registered with a callable factory; got {factory!r}")
    return SAMPLERS.register(name, factory, replace=replace)


def sampler_names() -> tuple[str, ...]:
    """Names of the registered sampling methods, sorted."""
    return tuple(sorted(SAMPLERS))


def make_sampler(method: str, spec: NetworkSpec, xi, y, options: Mapping | None = None) -> Sampler:
    """The registered method `method` built on path features xi (P, N0, H) and targets y (P,).

    Raises ValueError for an unknown method or an option the method does not take (both named).
    """
    try:
        factory = SAMPLERS[method]
    except ValueError as err:  # the registry's message (with its did-you-mean), and where new methods come from
        raise ValueError(f"method: {err} (add your own with attnpaths.register_sampler)") from None
    options = dict(options or {})
    params = inspect.signature(factory).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        taken = [n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL][3:]
        unknown = sorted(set(options) - set(taken))
        if unknown:
            raise ValueError(f"options {unknown} are not options of method {method!r}; it takes {taken}")
    return factory(spec, xi, y, **options)
