"""The draw driver shared by every sampling method: chunks, storage, resume, progress bar, time box.

Given a `Sampler` (protocol.py) the driver runs its chains for n_warmup steps, then records f(x_test) and
w_hat w_hat^T / N_1 after every `thin` steps. Steps run in compiled chunks of up to 64 draws (about a second
each); after a chunk the draws may be saved (`store.DrawStore`: only the new draws are appended) and the time
box checked. A run killed at any point resumes from its last save to exactly the numbers of an uninterrupted run
with the same seed, because a chunk of n draws is the same compiled loop whatever n is.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from attnpaths._src.checks import as_count
from attnpaths._src.network import Weights, check_weights, overlap, path_input_weights
from attnpaths._src.sampling import store
from attnpaths._src.sampling.draws import PosteriorDraws
from attnpaths._src.sampling.protocol import Sampler

_CHUNK = 64  # most draws made by one compiled call


def _chunk_impl(sampler: Sampler, state, xi_test, thin, n):
    """n <= _CHUNK draws `thin` steps apart in one loop (thin, n traced).

    The loop keeps each draw's path input weights (C, H, N0) and U; f(x_test) of the whole chunk is then one
    matrix product (_CHUNK C, N0 H) x (N0 H, P_test) instead of a matrix-vector product per draw.
    Returns (state, f (_CHUNK, C, P_test), U (_CHUNK, C, H, H)); rows >= n are zero.
    """
    spec = sampler.spec
    C, H = sampler.weights(state).V0.shape[0], spec.n_paths
    buffers = (jnp.zeros((_CHUNK, C, H, xi_test.shape[1])), jnp.zeros((_CHUNK, C, H, H)))

    def body(i, carry):
        st, (Wb, Ub) = carry
        st = jax.lax.fori_loop(0, thin, lambda _, s: sampler.step(s), st)
        w = sampler.weights(st)
        W = jax.vmap(lambda v: path_input_weights(spec, v))(w)
        U = jax.vmap(lambda v: overlap(spec, v))(w)
        return st, (Wb.at[i].set(W), Ub.at[i].set(U))

    state, (Wb, Ub) = jax.lax.fori_loop(0, n, body, (state, buffers))
    return state, jnp.einsum("kcpj,mjp->kcm", Wb, xi_test), Ub


_chunk_pytree = jax.jit(_chunk_impl)  # a pytree sampler: its arrays are arguments, compiled once per shapes
_chunk_static = jax.jit(_chunk_impl, static_argnums=0)  # any other object: a constant, hashed by identity


def _is_pytree(obj) -> bool:
    leaves = jax.tree_util.tree_leaves(obj)
    return not (len(leaves) == 1 and leaves[0] is obj)


def _i64(n) -> jnp.ndarray:
    """A traced loop count (one dtype everywhere, so calls share one compilation)."""
    return jnp.asarray(n, dtype=jnp.int64)


def _header(sampler: Sampler, xi_test, n_chains, n_warmup, thin, seed, init) -> dict:
    arrays = [sampler.xi, sampler.y, xi_test] + (jax.tree_util.tree_leaves(init) if init is not None else [])
    return dict(method=type(sampler).__name__, spec=store.spec_record(sampler.spec), data=store.data_hash(*arrays),
                settings=dict(n_chains=n_chains, n_warmup=n_warmup, thin=thin, seed=seed,
                              init="given" if init is not None else "prior"),
                options=sampler.settings)


def _check_init(sampler: Sampler, init, n_chains: int):
    if init is None:
        return None
    n0 = sampler.xi.shape[1]
    if np.ndim(getattr(init, "V0", None)) == 2:
        return check_weights(sampler.spec, init, n0)
    return check_weights(sampler.spec, init, n0, (n_chains,))


def run_sampler(sampler: Sampler, xi_test, n_draws: int, *, n_chains: int = 4, n_warmup: int = 0, thin: int = 1,
                seed: int = 0, init: Weights | None = None, path=None, resume: bool = False,
                save_every: int | None = None, save_interval: float = 30.0, time_budget: float | None = None,
                progress: bool = True) -> PosteriorDraws:
    """Run `sampler`'s chains and record f(x_test) and w_hat w_hat^T / N_1 after every `thin` steps.

    Args:
      sampler: any `Sampler` (training data inside), e.g. `BlockedGibbs` or `NUTSSampler`.
      xi_test: (P_test, N0, H) path features of the test inputs.
      n_draws: draws to record per chain.
      n_chains: independent chains, run in parallel (vectorised in one compiled loop).
      n_warmup: steps discarded before the first draw (NUTS adapts its step size and mass matrix there).
      thin: steps between recorded draws.
      seed: int seed of the chains' PRNG keys.
      init: start weights (`Weights`, unbatched: the same for every chain, or with a chain axis); default: the
        method's own start (the prior for Gibbs, NumPyro's init strategy for NUTS).
      path: results file (.npz; its draws go to a `{stem}.parts` folder beside it). Saved atomically after every
        `save_every` draws (if given) or `save_interval` seconds, whichever comes first (0: after every chunk),
        at the end, at the time budget, and when the run stops on an exception (KeyboardInterrupt included).
        A save appends only the new draws. A killed run loses at most the draws since its last save.
      resume: continue the run stored in `path` (same spec, data, method, seed and settings; n_draws may grow).
        The result equals an uninterrupted run with the same seed, bit for bit.
      time_budget: seconds of wall time for this call (compilation included); the run stops cleanly after the
        chunk that crosses it, saves, and returns the draws so far with `complete=False`. None: no limit.
      progress: show a tqdm bar over steps.

    Returns:
      PosteriorDraws with f_test (C, S, P_test) and U (C, S, H, H), S = n_draws unless stopped by the time
      budget; seconds excludes compilation (and adds up over resumed calls).
    """
    t_call = time.perf_counter()
    n_draws = as_count("n_draws", n_draws)
    n_chains = as_count("n_chains", n_chains)
    n_warmup = as_count("n_warmup", n_warmup, 0)
    thin = as_count("thin", thin)
    seed = as_count("seed", seed, 0)
    if save_every is not None:
        save_every = as_count("save_every", save_every)
    if not save_interval >= 0:
        raise ValueError(f"save_interval must be >= 0 seconds; got {save_interval!r}")
    if time_budget is not None and not time_budget > 0:
        raise ValueError(f"time_budget must be > 0 seconds or None; got {time_budget!r}")
    spec = sampler.spec
    xi_test = jnp.asarray(np.asarray(xi_test, dtype=np.float64))
    want = (sampler.xi.shape[1], spec.n_paths)
    if xi_test.ndim != 3 or xi_test.shape[1:] != want:
        raise ValueError(f"xi_test must have shape (P_test, N0, H) = (?, {want[0]}, {want[1]}); got {xi_test.shape}")
    init = _check_init(sampler, init, n_chains)

    state = sampler.init(jax.random.PRNGKey(seed), n_chains, n_warmup, init)
    fs, Us, warm_done, seconds = [], [], 0, 0.0
    writer = None
    if path is not None:
        writer, stored = store.DrawStore.open(path, _header(sampler, xi_test, n_chains, n_warmup, thin, seed, init),
                                              resume)
        if stored is not None:
            state = store.state_from_leaves(state, stored.state, path)
            warm_done, seconds = stored.warmup_done, stored.seconds
            if stored.f_test.shape[1]:
                fs, Us = [stored.f_test], [stored.U]
    chunk = _chunk_pytree if _is_pytree(sampler) else _chunk_static
    jax.block_until_ready(chunk(sampler, state, xi_test, _i64(thin), _i64(0)))  # compile, untimed
    run = _Run(sampler, chunk, xi_test, writer, n_draws, thin, warm_done, seconds, fs, Us, state)
    run.go(n_warmup, save_every, save_interval, time_budget, t_call, progress)
    f_test, U = run.draws()
    f_test, U = np.ascontiguousarray(f_test[:, :n_draws]), np.ascontiguousarray(U[:, :n_draws])
    return PosteriorDraws(f_test, U, thin, run.seconds, run.done >= n_draws)


class _Run:
    """The mutable bookkeeping of one driver call (draws so far, unsaved draws, timers)."""

    def __init__(self, sampler, chunk, xi_test, writer, n_draws, thin, warm_done, seconds, fs, Us, state):
        self.sampler, self.chunk, self.xi_test, self.writer = sampler, chunk, xi_test, writer
        self.n_draws, self.thin, self.warm_done, self.seconds = n_draws, thin, warm_done, seconds
        self.fs, self.Us, self.state = fs, Us, state
        self.done = sum(f.shape[1] for f in fs)
        self.new: list[tuple[np.ndarray, np.ndarray]] = []  # chunks (f, U) made since the last write
        self.unsaved = 0  # draws in self.new
        self.dirty = False  # state changed since the last write
        self.n_chains = sampler.weights(state).V0.shape[0]

    def draws(self) -> tuple[np.ndarray, np.ndarray]:
        spec = self.sampler.spec
        if not self.fs:
            H = spec.n_paths
            return np.zeros((self.n_chains, 0, self.xi_test.shape[0])), np.zeros((self.n_chains, 0, H, H))
        # C order whatever the chunks' layout: summaries (sums over axes) of the returned draws and of the same
        # draws read back from disk must agree to the last bit
        return (np.ascontiguousarray(np.concatenate(self.fs, axis=1)),
                np.ascontiguousarray(np.concatenate(self.Us, axis=1)))

    def save(self) -> None:
        if self.writer is None:  # nothing to write to
            self.new, self.unsaved, self.dirty = [], 0, False
        if not self.dirty:
            return
        new_f = np.concatenate([f for f, _ in self.new], axis=1) if self.new else None
        new_U = np.concatenate([U for _, U in self.new], axis=1) if self.new else None
        self.writer.save(store.state_leaves(self.state), self.warm_done, self.seconds, self.n_draws, new_f, new_U)
        self.new, self.unsaved, self.dirty = [], 0, False

    def _call(self, thin: int, n: int):
        state, fb, Ub = self.chunk(self.sampler, self.state, self.xi_test, _i64(thin), _i64(n))
        fb, Ub = np.asarray(fb[:n]), np.asarray(Ub[:n])
        if not (np.all(np.isfinite(fb)) and np.all(np.isfinite(Ub))):
            raise RuntimeError(f"{type(self.sampler).__name__} draws became NaN/inf (T = "
                               f"{self.sampler.spec.temperature}): raise T or check the data. The draws before "
                               "this chunk are kept.")
        return state, fb, Ub

    def go(self, n_warmup, save_every, save_interval, time_budget, t_call, progress) -> None:
        left_warm = n_warmup - self.warm_done
        total = left_warm + max(self.n_draws - self.done, 0) * self.thin
        bar = tqdm(total=total, desc=type(self.sampler).__name__, unit="step", disable=not progress)
        start = last_save = time.perf_counter()
        per_step = None
        try:
            while self.warm_done < n_warmup or self.done < self.n_draws:
                t0 = time.perf_counter()
                target = 1 if per_step is None else max(1, int(1.0 / max(per_step, 1e-9)))  # ~1 s per call
                if self.warm_done < n_warmup:  # one "draw" n steps long: the same compiled loop as the draws
                    n = min(target, n_warmup - self.warm_done)
                    self.state, _, _ = self._call(n, 1)
                    self.warm_done += n
                    steps = n
                else:
                    n = min(max(1, target // self.thin), self.n_draws - self.done, _CHUNK)
                    if save_every is not None:
                        n = min(n, save_every - self.unsaved)
                    self.state, fb, Ub = self._call(self.thin, n)
                    self.fs.append(np.moveaxis(fb, 0, 1))
                    self.Us.append(np.moveaxis(Ub, 0, 1))
                    self.new.append((self.fs[-1], self.Us[-1]))
                    self.done += n
                    self.unsaved += n
                    steps = n * self.thin
                self.dirty = True
                bar.update(steps)
                now = time.perf_counter()
                per_step = (now - t0) / steps
                over = time_budget is not None and now - t_call >= time_budget
                due = (save_every is not None and self.unsaved >= save_every) or now - last_save >= save_interval
                if due or over:
                    self.seconds += now - start
                    start = last_save = now
                    self.save()
                if over:
                    break
        finally:
            bar.close()
            self.seconds += time.perf_counter() - start
            self.save()
