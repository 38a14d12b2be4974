"""Cost of one training step of the one-shot network for each preset, and the extrapolated training time.

    .venv/bin/python benchmarks/oneshot_training.py [--steps 10] [--presets cpu paper]

Each preset's network is trained for a few steps on its own fresh Omniglot episodes (through `training.train`,
episode generation included); the first step (compilation) is excluded. Prints a table: seconds per step and the
time of the preset's `train_steps`, on the device JAX picks (a GPU when there is one). The machine's load average
is printed beside it: on a shared CPU the numbers move with it.
"""

from __future__ import annotations

import argparse
import os
import time

import jax

from attnpaths._src import training as tr
from attnpaths.experiments.oneshot import PRESETS, OneShotSettings
from attnpaths.experiments.oneshot.data import build_episodes
from attnpaths.experiments.oneshot.train import architecture, train_config


class _Timed:
    """The preset's fresh-episode batches, timing every step after the first."""

    def __init__(self, source):
        self.source, self.input_width, self.stamps = source, source.input_width, []

    def fingerprint(self):
        return self.source.fingerprint()

    def batch(self, seed, step, size):
        self.stamps.append(time.perf_counter())
        return self.source.batch(seed, step, size)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10, help="timed steps per preset (default: 10)")
    p.add_argument("--presets", nargs="+", default=["cpu", "paper"], help="presets (default: cpu paper)")
    p.add_argument("--data-dir", default=None, help="Omniglot folder (default: the shared data folder)")
    args = p.parse_args()
    print(f"device: {jax.devices()[0].platform}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'preset':<8} {'width':>5} {'G':>4} {'batch':>5} {'dtype':>8} {'s/step':>7} {'steps':>6} {'hours':>7}")
    for name in args.presets:
        s = OneShotSettings().updated(PRESETS[name].values).updated({"data_dir": args.data_dir})
        e = build_episodes(s)
        timed = _Timed(e.training)
        config = train_config(s)
        config = type(config)(**dict(config.to_dict(), steps=args.steps + 2, eval_every=0))
        tr.train(architecture(s), timed, config, progress=False)
        per_step = (timed.stamps[-1] - timed.stamps[1]) / (len(timed.stamps) - 2)
        print(f"{name:<8} {s.gd_width:>5} {s.qk_dim:>4} {s.batch_size:>5} {s.dtype:>8} {per_step:>7.3f} "
              f"{s.train_steps:>6} {per_step * s.train_steps / 3600:>7.2f}")


if __name__ == "__main__":
    main()
