"""Learning curves of the one-shot network (issue 15 item 1): which training gives the strongest network per
CPU-hour on the Omniglot characters available here.

    .venv/bin/python benchmarks/oneshot_curves.py train NAME [--seed 0] [--root DIR] [--steps N]
    .venv/bin/python benchmarks/oneshot_curves.py time [NAME ...] [--steps 10]
    .venv/bin/python benchmarks/oneshot_curves.py report [--root DIR] [--figure PATH] [--timing FILE]

Every configuration is the `cpu` preset (the paper's input: 32 x 32 x 3, 8 x 8 patches, 48 tokens) with the
overrides in `CONFIGS` (the `res*` ones change the input too: lower resolution, one grey channel), validated
every `eval_every` steps on 2500 held-out-class episodes (one standard error
<= 1 point) with the weights of every validation kept (`keep_snapshots`).

* `train` trains one configuration into ROOT/NAME[-sK]/train.partial.npz, the very checkpoint a one-shot run
  writes, and resumes from it when it is there (a killed training continues to bitwise the same weights).
  `--steps` stops a constant-rate configuration early (it can be extended later by a larger --steps).
* `time` measures seconds per step of the configurations in one process, one after the other (the first step,
  compilation, excluded), so that the ratios are measured under one load.
* `report` evaluates every kept snapshot on the cross-test and validation episodes, prints a table per
  configuration (steps, training, validation and cross-test accuracy, seconds at the measured rate) and draws
  the curves; the patch-correlation baseline is printed beside them.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
from pathlib import Path

import jax
import numpy as np

from attnpaths._src import training as tr
from attnpaths._src.tasks.oneshot import patch_correlation_baseline
from attnpaths.experiments.oneshot import PRESETS, OneShotSettings
from attnpaths.experiments.oneshot.data import build_episodes
from attnpaths.experiments.oneshot.train import architecture, train_config

INPUT_KEYS = ("data", "data_dir", "image_size", "patch_size", "channels", "dark_strokes", "pixel_mean", "pixel_std",
              "label_seed", "episode_seed", "n_validation", "n_test", "n_ood", "augment")
COMMON = {"n_validation": 2500, "n_eval": 2500, "eval_every": 250, "keep_snapshots": True}
COSINE = {"train_steps": 8000, "lr_schedule": "warmup_cosine", "warmup_steps": 400}
CONFIGS = {
    "cpu": {},  # the preset as it is: 4000 steps at a constant rate
    "cpu-cosine": COSINE,
    "cpu-cosine-ema": {**COSINE, "ema": 0.999},
    "cpu-cosine-augment": {**COSINE, "augment": 4},
    "w128-cosine": {**COSINE, "gd_width": 128, "qk_dim": 32},
    "paper-arch": {"gd_width": 512, "qk_dim": 128, "optimizer": "adam_l2", "learning_rate": 3e-4,
                   "train_steps": 41240, "eval_every": 500},
}
# lower-resolution inputs (grey, bright strokes, no pixel normalisation: the `quick` preset's input format)
GREY = {"channels": 1, "dark_strokes": False, "pixel_mean": 0.0, "pixel_std": 1.0}
RES8 = {**GREY, "image_size": 8, "patch_size": 8}  # one token per image: N0 = 64, 3 tokens
RES16 = {**GREY, "image_size": 16, "patch_size": 8}  # four tokens per image: N0 = 64, 12 tokens
SHORT_COSINE = {"train_steps": 4000, "lr_schedule": "warmup_cosine", "warmup_steps": 200}
CONFIGS.update({
    "res8-w32": {**RES8, "gd_width": 32, "qk_dim": 16, "train_steps": 4000},
    "res8-w64-cosine": {**RES8, **SHORT_COSINE},
    "res8-w128-cosine": {**RES8, **SHORT_COSINE, "gd_width": 128, "qk_dim": 32},
    "res16-w64-cosine": {**RES16, **SHORT_COSINE},
    "res16-w128-cosine": {**RES16, **SHORT_COSINE, "gd_width": 128, "qk_dim": 32},
    "res8-w128-cosine-8k": {**RES8, **COSINE, "warmup_steps": 200, "gd_width": 128, "qk_dim": 32},
    "res8-paper-arch-cosine": {**RES8, **SHORT_COSINE, "gd_width": 512, "qk_dim": 128, "optimizer": "adam_l2",
                               "learning_rate": 3e-4},
})


def settings(name: str, seed: int = 0) -> OneShotSettings:
    if name not in CONFIGS:
        raise ValueError(f"configuration must be one of {sorted(CONFIGS)}; got {name!r}")
    base = OneShotSettings().updated(PRESETS["cpu"].values)
    return base.updated({**COMMON, **CONFIGS[name], "seed": seed})


def _folder(root: Path, name: str, seed: int) -> Path:
    return root / (name if seed == 0 else f"{name}-s{seed}")


def train(name: str, seed: int, root: Path, steps: int | None) -> None:
    s = settings(name, seed)
    e = build_episodes(s)
    config = train_config(s)
    if steps is not None:
        if s.lr_schedule != "constant":
            raise ValueError(f"--steps: {name} has a learning-rate schedule over its own train_steps")
        config = tr.TrainConfig(**dict(config.to_dict(), steps=steps))
    path = _folder(root, name, seed) / "train.partial.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.parent / "settings.json").write_text(json.dumps(s.to_dict(), indent=1, default=list))
    t0 = time.perf_counter()
    val = e.validation
    res = tr.train(architecture(s), e.training, config, validation=(val.x[:s.n_eval], val.y[:s.n_eval]),
                   checkpoint=path, resume=True, progress=False)
    print(f"{name} seed {seed}: {res.step} steps, best validation {100 * max(res.curve.val_accuracy):.1f}% at "
          f"step {res.best_step}; {time.perf_counter() - t0:.0f} s in this call")


@functools.cache
def _episodes_of(input_settings: str):
    return build_episodes(OneShotSettings().updated(json.loads(input_settings)))


def _episodes(name: str):
    """The episodes of a configuration, built once per distinct input (resolution, channels, augmentation)."""
    s = settings(name).to_dict()
    return _episodes_of(json.dumps({k: s[k] for k in INPUT_KEYS}, default=list))


def _baseline(name: str) -> dict:
    e = _episodes(name)
    return {k: float(np.mean(patch_correlation_baseline(ep, e.config) == ep.y))
            for k, ep in (("validation", e.validation), ("test_cross", e.test["cross"]))}


def time_steps(names: list[str], steps: int) -> dict:
    out = {}
    print(f"device {jax.devices()[0].platform}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for name in names:
        s = settings(name)
        source = _episodes(name).training
        # the step's cost does not depend on where the schedule is: a short warm-up keeps steps >= warmup_steps
        config = tr.TrainConfig(**dict(train_config(s).to_dict(), eval_every=0, snapshots=False, steps=steps + 1,
                                       warmup_steps=min(s.warmup_steps, 1)))
        stamps = []

        class Stamped:  # the batch source, stamping the start of every step (the first, compiling, is excluded)
            input_width, fingerprint = source.input_width, source.fingerprint

            def batch(self, seed, step, size):
                stamps.append(time.perf_counter())
                return source.batch(seed, step, size)

        tr.train(architecture(s), Stamped(), config, progress=False)
        out[name] = (time.perf_counter() - stamps[1]) / (len(stamps) - 1)
        print(f"{name:<20} {out[name]:.3f} s/step", flush=True)
    return out


def _evaluate(name: str, folder: Path) -> dict:
    s, e = settings(name), _episodes(name)
    ck = tr.load_checkpoint(folder / "train.partial.npz", architecture(s))
    test = e.test["cross"]
    rows = []
    for (step, weights), tr_acc, val in zip(ck.snapshots, ck.curve.train_accuracy, ck.curve.val_accuracy):
        rows.append({"step": step, "train": float(tr_acc), "validation": float(val),
                     "test_cross": tr.gd_accuracy(weights, test.x, test.y)})
    return {"name": name, "steps": ck.step, "best_step": ck.best_step, "rows": rows, "baseline": _baseline(name),
            "input": f"{s.image_size}x{s.image_size}, {s.patch_size}x{s.patch_size} patches"}


def report(root: Path, figure: Path | None, timing: dict) -> None:
    curves = []
    for folder in sorted(p for p in root.iterdir() if (p / "train.partial.npz").exists()):
        name = folder.name.split("-s")[0] if folder.name not in CONFIGS else folder.name
        c = _evaluate(name, folder)
        c["folder"] = folder.name
        c["s_per_step"] = timing.get(name)
        curves.append(c)
        best = max(c["rows"], key=lambda r: r["validation"])
        last = c["rows"][-1]
        rate = c["s_per_step"]
        print(f"\n{folder.name}: {c['steps']} steps" + (f", {rate:.3f} s/step -> {rate * c['steps'] / 60:.0f} min"
                                                       if rate else ""))
        print(f"  best by validation: step {best['step']}, validation {100 * best['validation']:.1f}%, cross test "
              f"{100 * best['test_cross']:.1f}%, training {100 * best['train']:.1f}%")
        print(f"  last:               step {last['step']}, validation {100 * last['validation']:.1f}%, cross test "
              f"{100 * last['test_cross']:.1f}%, training {100 * last['train']:.1f}%")
    print("\n| configuration | input | steps | s/step | minutes | best validation (step) | cross test there | "
          "training there | last validation | last cross test | baseline validation, cross test |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for c in curves:
        best = max(c["rows"], key=lambda r: r["validation"])
        last, rate, b = c["rows"][-1], c["s_per_step"], c["baseline"]
        timing_cells = f"{rate:.3f} | {rate * c['steps'] / 60:.1f}" if rate else " | "
        print(f"| {c['folder']} | {c['input']} | {c['steps']} | {timing_cells} | {pct(best['validation'])} "
              f"({best['step']}) | {pct(best['test_cross'])} | {pct(best['train'])} | {pct(last['validation'])} | "
              f"{pct(last['test_cross'])} | {pct(b['validation'])}, {pct(b['test_cross'])} |")
    (root / "curves.json").write_text(json.dumps({"curves": curves}, indent=1))
    if figure is not None:
        _draw(curves, figure)
        print(f"wrote {figure}")


def pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def _draw(curves: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), sharey=True)
    for c in curves:
        steps = np.array([r["step"] for r in c["rows"]], dtype=float)
        for ax, key in zip(axes, ("train", "validation", "test_cross")):
            x = steps * c["s_per_step"] / 60 if c["s_per_step"] else steps
            ax.plot(x, [100 * r[key] for r in c["rows"]], label=c["folder"])
    titles = {"train": "training episodes (minibatch)", "validation": "validation (2500 episodes)",
              "test_cross": "cross test (1000 episodes)"}
    baselines = {c["input"]: c["baseline"] for c in curves}  # one dotted line per input format
    for ax, key in zip(axes, titles):
        ax.set_title(titles[key])
        ax.set_xlabel("minutes at the measured s/step (2 cores)")
        for (name, base), ls in zip(sorted(baselines.items()), (":", "-.", "--", (0, (1, 3)))):
            if key in base:
                ax.axhline(100 * base[key], color="k", ls=ls, lw=1, label=f"patch correlation, {name}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one configuration (resumes its checkpoint)")
    t.add_argument("name", choices=sorted(CONFIGS))
    t.add_argument("--seed", type=int, default=0, help="training seed (default: 0)")
    t.add_argument("--root", type=Path, default=Path("results/curves"), help="folder (default: results/curves)")
    t.add_argument("--steps", type=int, default=None, help="stop a constant-rate configuration here")
    m = sub.add_parser("time", help="seconds per step of configurations, in one process")
    m.add_argument("names", nargs="*", default=sorted(CONFIGS), help="configurations (default: all)")
    m.add_argument("--steps", type=int, default=10, help="timed steps each (default: 10)")
    m.add_argument("--out", type=Path, default=None, help="write the rates to this JSON file")
    r = sub.add_parser("report", help="evaluate the kept snapshots, print the table, draw the figure")
    r.add_argument("--root", type=Path, default=Path("results/curves"), help="folder (default: results/curves)")
    r.add_argument("--figure", type=Path, default=None, help="write the figure here (default: none)")
    r.add_argument("--timing", type=Path, default=None, help="JSON of `time --out` (s/step per configuration)")
    a = p.parse_args()
    if a.command == "train":
        train(a.name, a.seed, a.root, a.steps)
    elif a.command == "time":
        rates = time_steps(a.names, a.steps)
        if a.out:
            a.out.write_text(json.dumps(rates, indent=1))
    else:
        report(a.root, a.figure, json.loads(a.timing.read_text()) if a.timing else {})


if __name__ == "__main__":
    main()
