"""A small sampling job for the fault-injection tests (tests/test_sampling_faults.py); run as a script.

    python tests/sampling_job.py OUT N_DRAWS KILL_AT CACHE

Runs (or resumes) a seeded Gibbs run of a small random network into OUT with a save after every 3 draws,
printing "saved K" (K = draws on disk) after each save. KILL_AT > 0: the job SIGKILLs itself at its KILL_AT-th
file rename, i.e. after the atomic writer has written and synced a temporary file and before it replaces the
old one (a kill mid-write, and, at the main record's rename, between a part and the record that counts it).
CACHE: a folder for JAX's persistent compilation cache (so that restarts do not recompile).
"""

from __future__ import annotations

import os
import signal
import sys

import numpy as np

SETTINGS = dict(n_chains=2, n_warmup=5, thin=2, seed=11, save_every=3, save_interval=0.0, progress=False)


def problem():
    """A 2-layer network (heads 2 x 2) on random data: spec, xi, y, xi_test."""
    import jax

    import attnpaths as ap

    rng = np.random.default_rng(5)
    spec = ap.NetworkSpec((2, 2), widths=[3, 4, 2], temperature=0.2, readout="last")
    x, xt = rng.normal(size=(8, 4, 3)), rng.normal(size=(5, 4, 3))
    att = [np.asarray(jax.nn.softmax(rng.normal(size=(13, 2, 3, 3)), axis=-2)) for _ in range(2)]
    xi = ap.path_features(spec, [a[:8] for a in att], x)
    xit = ap.path_features(spec, [a[8:] for a in att], xt)
    return spec, xi, rng.choice([-1.0, 1.0], size=8), xit


def run(out, n_draws: int):
    """The job itself (also called in-process by the tests for the uninterrupted reference)."""
    from attnpaths._src.sampling import sample_from_features

    spec, xi, y, xit = problem()
    return sample_from_features(spec, xi, y, xit, n_draws=n_draws, path=out, resume=out is not None, **SETTINGS)


def _inject(kill_at: int) -> None:
    from attnpaths._src import atomic
    from attnpaths._src.sampling import store

    replace, renames = os.replace, [0]

    def killing_replace(src, dst):
        renames[0] += 1
        if renames[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        replace(src, dst)

    if kill_at > 0:
        atomic.os = type(sys)("os_with_kill")  # only the writer's os.replace changes
        atomic.os.__dict__.update(os.__dict__)
        atomic.os.replace = killing_replace
    save = store.DrawStore.save

    def reporting_save(self, *args, **kwargs):
        save(self, *args, **kwargs)
        print(f"saved {sum(self.part_sizes)}", flush=True)

    store.DrawStore.save = reporting_save


if __name__ == "__main__":
    out, n_draws, kill_at, cache = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    import jax

    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    import attnpaths  # noqa: F401  (float64)

    _inject(kill_at)
    run(out, n_draws)
    print("done", flush=True)
