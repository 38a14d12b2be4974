"""Cost of one training step of the one-shot network for each preset, and the extrapolated training time.

    .venv/bin/python benchmarks/oneshot_training.py [--steps 10] [--presets cpu paper] [--patches-per-step]

Each preset's network is trained for a few steps on its own fresh Omniglot episodes (through `training.train`,
episode generation included); the first step (compilation) is excluded. Prints a table: seconds per step and the
time of the preset's `train_steps`, on the device JAX picks (a GPU when there is one). The machine's load average
is printed beside it: on a shared CPU the numbers move with it.

--patches-per-step also times the episodes built the old way, every image's patches normalised again in every
step, in alternating rounds with the default (patches normalised once per image), so that both see the same
load; it prints both, and whether the two trainings end on bitwise the same weights.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np

from attnpaths._src import training as tr
from attnpaths._src.tasks import oneshot as episodes_
from attnpaths.experiments.oneshot import PRESETS, OneShotSettings
from attnpaths.experiments.oneshot.data import build_episodes
from attnpaths.experiments.oneshot.train import architecture, train_config


class _Timed:
    """The preset's fresh-episode batches, timing every step after the first."""

    def __init__(self, source):
        self.source, self.input_width, self.stamps, self.in_batch = source, source.input_width, [], []

    def fingerprint(self):
        return self.source.fingerprint()

    def batch(self, seed, step, size):
        self.stamps.append(time.perf_counter())
        out = self.source.batch(seed, step, size)
        self.in_batch.append(time.perf_counter() - self.stamps[-1])
        return out


class _PerStep:
    """The same batches with every image's patches normalised again in each step (the pre-cache path)."""

    def __init__(self, source):
        self.source, self.input_width = source, source.input_width

    def fingerprint(self):
        return self.source.fingerprint()

    def batch(self, seed, step, size):
        s = self.source
        ep = episodes_._draw(s.images, s.pools, size, s.config, np.random.default_rng([seed, 7, step]))
        return ep.x, ep.y


def _seconds_per_step(arch, source, config) -> tuple[float, float, list]:
    """(seconds per step, of which drawing the batch, the final weights); the first step is excluded."""
    timed = _Timed(source)
    res = tr.train(arch, timed, config, progress=False)
    return ((timed.stamps[-1] - timed.stamps[1]) / (len(timed.stamps) - 2), float(np.mean(timed.in_batch[1:])),
            jax.tree_util.tree_leaves(res.params))


def _compare_patches(name, arch, source, config, rounds=3) -> None:
    times = {"once": [], "per step": []}
    batch = {"once": [], "per step": []}
    weights = {}
    for _ in range(rounds):
        for mode, src in (("once", source), ("per step", _PerStep(source))):
            t, b, weights[mode] = _seconds_per_step(arch, src, config)
            times[mode].append(t)
            batch[mode].append(b)
    same = all(np.array_equal(a, b) for a, b in zip(weights["once"], weights["per step"]))
    for mode, ts in times.items():
        print(f"  {name}: patches normalised {mode:<8}: {np.median(ts):.3f} s/step, of which the batch "
              f"{np.median(batch[mode]):.3f} s (rounds: " + ", ".join(f"{t:.3f}" for t in ts) + ")")
    print(f"  {name}: bitwise the same weights after {config.steps} steps: {same}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10, help="timed steps per preset (default: 10)")
    p.add_argument("--presets", nargs="+", default=["cpu", "paper"], help="presets (default: cpu paper)")
    p.add_argument("--data-dir", default=None, help="Omniglot folder (default: the shared data folder)")
    p.add_argument("--patches-per-step", action="store_true",
                   help="also time the old path (patches normalised in every step), alternating rounds")
    args = p.parse_args()
    print(f"device: {jax.devices()[0].platform}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'preset':<8} {'width':>5} {'G':>4} {'batch':>5} {'dtype':>8} {'s/step':>7} {'steps':>6} {'hours':>7}")
    for name in args.presets:
        s = OneShotSettings().updated(PRESETS[name].values).updated({"data_dir": args.data_dir})
        e = build_episodes(s)
        config = train_config(s)
        config = type(config)(**dict(config.to_dict(), steps=args.steps + 2, eval_every=0))
        per_step, _, _ = _seconds_per_step(architecture(s), e.training, config)
        print(f"{name:<8} {s.gd_width:>5} {s.qk_dim:>4} {s.batch_size:>5} {s.dtype:>8} {per_step:>7.3f} "
              f"{s.train_steps:>6} {per_step * s.train_steps / 3600:>7.2f}")
        if args.patches_per_step:
            _compare_patches(name, architecture(s), e.training, config)


if __name__ == "__main__":
    main()
