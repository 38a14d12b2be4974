"""The one-shot claim as a function of how well the heads are trained (`attnpaths oneshot-strength`).

For every seed in `seeds` one network is trained, keeping its weights at every validation (stage
`train.s<seed>`). From its curve `checkpoints` steps are chosen that span the first validation to the best one,
evenly spaced in validation accuracy (`pick_steps`). At each (stage `point.s<seed>.t<step>`) the whole claim of
the one-shot run is redone on that network's heads: its accuracies, the theory on the (width x temperature)
grid, the GP, the GP on the best path subset, the kernel with U_GD, and Delta(N) = theory - GP with the
character-bootstrap intervals and McNemar p-values (draw 0 of the P theory examples).

The summary (`strength_table`) puts every point against the GD network's cross-test accuracy, fits a line to
Delta(N) and to the U_GD headroom (accuracy of the kernel with U_GD minus the GP's) across all points, and reads
the line at the paper's network accuracy (83.8%), an extrapolation that the results label as one. The
patch-correlation baseline (`patch_correlation_baseline`) is reported beside it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats as sps

from attnpaths._src.tasks.oneshot import patch_correlation_baseline
from attnpaths.experiments.base import EXPERIMENTS, Experiment
from attnpaths.experiments.io import write_json_atomic
from attnpaths.experiments.oneshot.compare import claim_stage, headroom_stage
from attnpaths.experiments.oneshot.data import PROTOCOLS, EpisodeSets, build_episodes
from attnpaths.experiments.oneshot.settings import ANALYSES, PRESETS, OneShotSettings
from attnpaths.experiments.oneshot.theory import features, theory_stage
from attnpaths.experiments.oneshot.train import gd_stage, train_stage
from attnpaths.experiments.runner import Runner
from attnpaths.experiments.settings import at_least, between, each, positive, setting

PAPER_GD_ACCURACY = 0.838  # the authors' trained network on novel characters (spec E.5)


@dataclass(frozen=True)
class StrengthSettings(OneShotSettings):
    """The one-shot settings (seed replaced by each of `seeds`, snapshots kept) and the study's own."""

    seeds: tuple[int, ...] = setting((0, 1, 2), "training seeds (one trained network each)",
                                     check=each(at_least(0)))
    checkpoints: int = setting(6, "checkpoints per seed, from the first validation to the best, evenly spaced in "
                               "validation accuracy", check=at_least(2))
    widths: tuple[float, ...] = setting((10.0, 100.0, 1000.0), "widths N of the theory at every checkpoint",
                                        check=each(positive))
    analyses: tuple[str, ...] = setting((), "not used: every checkpoint runs the claim only", choices=ANALYSES)
    keep_snapshots: bool = setting(True, "must be true: the checkpoints are the kept snapshots")
    extrapolate_to: float = setting(PAPER_GD_ACCURACY, "GD cross-test accuracy at which the fitted trend is read "
                                    "(the paper's network: 0.838)", check=between(0, 1))

    def __post_init__(self):
        super().__post_init__()
        if not self.keep_snapshots:
            raise ValueError("setting 'keep_snapshots' must be true for oneshot-strength (its checkpoints are the "
                             "snapshots)")

    def run_settings(self, seed: int) -> OneShotSettings:
        return self.one_shot_run(seed=seed, analyses=())


def pick_steps(curve: dict, n: int) -> list[int]:
    """`n` validation steps from the first to the best (the earliest best), at validation accuracies evenly
    spaced between theirs: for each level below the best, the earliest step before the best at or above it that
    is not chosen yet (so a curve that jumps still gives `n` steps, the later ones just past the jump), and the
    best itself; fewer than `n` only when the steps before the best run out."""
    steps, val = list(curve["step"]), np.asarray(curve["val_accuracy"], dtype=np.float64)
    if not steps:
        raise ValueError("the training curve is empty: the network was never validated")
    best = int(np.argmax(val))
    chosen: list[int] = []
    for level in np.linspace(val[0], val[best], n)[:-1]:
        k = next((i for i in range(best) if val[i] >= level - 1e-12 and i not in chosen), None)
        if k is not None:
            chosen.append(k)
    return [int(steps[k]) for k in sorted(chosen + [best])]


@dataclass(frozen=True)
class StrengthPoint:
    """Output of stage `point.s<seed>.t<step>`: the claim on the network after `step` steps."""

    seed: int
    step: int
    validation_accuracy: float  # of the network during training (the first n_eval validation episodes)
    gd_accuracy: dict  # evaluation set -> accuracy of the network
    methods: list  # the headroom's predictors (name, kind, T, N, validation_accuracy)
    claim: dict  # protocol -> the claim table (as the one-shot run's results["claim"])


def point_stage(s: OneShotSettings, e: EpisodeSets, net, progress_file: Path, log) -> StrengthPoint:
    log(f"checkpoint: seed {s.seed}, step {net.best_step} (validation {100 * net.best_validation_accuracy:.1f}%)")
    gd = gd_stage(s, e, net, log)
    f = features(s, e, net, 0)
    grid = theory_stage(s, f, progress_file, log)
    head = headroom_stage(s, grid, f, net, log)
    claim = claim_stage(s, head, f)
    methods = [{k: m[k] for k in ("name", "kind", "T", "N", "validation_accuracy") if k in m} for m in head.methods]
    return StrengthPoint(s.seed, net.best_step, net.best_validation_accuracy, gd.accuracy, methods,
                         claim.protocols)


def _method(point: dict, protocol: str, kind: str, N=None) -> dict | None:
    return next((r for r in point["claim"][protocol]["methods"]
                 if r["kind"] == kind and (N is None or r.get("N") == N)), None)


def _trend(x: np.ndarray, y: np.ndarray, at: float, confidence: float) -> dict:
    """Least-squares line y = a + b x with the slope's interval and the line's value at `at` with the interval of
    the mean (t with n - 2 degrees of freedom; points treated as independent)."""
    n = len(x)
    if n < 3 or np.ptp(x) == 0:
        return {"n": int(n), "slope": None}
    fit = sps.linregress(x, y)
    t = sps.t.ppf(0.5 + confidence / 2, n - 2)
    resid = y - (fit.intercept + fit.slope * x)
    s = np.sqrt(np.sum(resid ** 2) / (n - 2))
    se_at = s * np.sqrt(1 / n + (at - x.mean()) ** 2 / np.sum((x - x.mean()) ** 2))
    value = fit.intercept + fit.slope * at
    return {"n": int(n), "slope": float(fit.slope), "slope_ci": [float(fit.slope - t * fit.stderr),
                                                                 float(fit.slope + t * fit.stderr)],
            "intercept": float(fit.intercept), "r": float(fit.rvalue), "p_value": float(fit.pvalue),
            "at": float(at), "value_at": float(value), "value_at_ci": [float(value - t * se_at),
                                                                       float(value + t * se_at)],
            "extrapolated": bool(at > x.max() or at < x.min())}


def strength_table(points: list[dict], widths, at: float, confidence: float) -> dict:
    """Per protocol: one row per checkpoint (GD accuracy, GP, Delta(N) with intervals and p, U_GD and best-subset
    headroom) and the fitted trends of Delta(N) and of the U_GD headroom against the GD accuracy."""
    out = {}
    for protocol in PROTOCOLS:
        rows = []
        for p in points:
            gp = _method(p, protocol, "gp")
            row = {"seed": p["seed"], "step": p["step"], "gd_accuracy": p["gd_accuracy"][f"test_{protocol}"],
                   "gd_validation_accuracy": p["gd_accuracy"]["validation"], "gp_accuracy": gp["accuracy"]["mean"]}
            for kind in ("gp_kernel_U_GD", "gp_subset"):
                m = _method(p, protocol, kind)
                row[kind] = {"accuracy": m["accuracy"]["mean"], "delta": m["delta_accuracy"]["delta"],
                             "ci": m["delta_accuracy"]["ci"]}
            row["theory"] = {}
            for N in widths:
                m = _method(p, protocol, "theory", N)
                row["theory"][f"{N:g}"] = None if m is None else {
                    "accuracy": m["accuracy"]["mean"], "delta": m["delta_accuracy"]["delta"],
                    "ci": m["delta_accuracy"]["ci"], "mcnemar_p": m["mcnemar"]["p_value"], "T": m["T"]}
            rows.append(row)
        x = np.array([r["gd_accuracy"] for r in rows])
        seeds = np.array([r["seed"] for r in rows])
        trends = {}
        series = {f"delta N={N:g}": [None if r["theory"][f"{N:g}"] is None else r["theory"][f"{N:g}"]["delta"]
                                     for r in rows] for N in widths}
        series["U_GD headroom"] = [r["gp_kernel_U_GD"]["delta"] for r in rows]
        if len(widths) > 1:  # the finite-width part: smallest minus largest width (the GP's T choice cancels)
            lo, hi = series[f"delta N={min(widths):g}"], series[f"delta N={max(widths):g}"]
            series[f"N={min(widths):g} minus N={max(widths):g}"] = [None if a is None or b is None else a - b
                                                                   for a, b in zip(lo, hi)]
        for key, values in series.items():
            ok = np.array([v is not None for v in values])
            y = np.array([np.nan if v is None else v for v in values])
            trends[key] = _trend(x[ok], y[ok], at, confidence)
            # the points of one seed share a network lineage and the test episodes: the per-seed slopes show
            # whether the pooled trend holds within every seed
            trends[key]["per_seed_slope"] = {str(k): _trend(x[ok & (seeds == k)], y[ok & (seeds == k)], at,
                                                            confidence)["slope"] for k in sorted(set(seeds))}
        out[protocol] = {"rows": rows, "trends": trends}
    return out


def strength_verdict(table: dict, widths, protocol: str = "cross") -> str:
    N = min(widths)
    tr = table[protocol]["trends"][f"delta N={N:g}"]
    rows = table[protocol]["rows"]
    if tr.get("slope") is None:
        return "too few checkpoints with a converged theory for a trend"
    lo, hi = tr["slope_ci"]
    grows = "grows" if lo > 0 else "shrinks" if hi < 0 else "shows no resolved trend"
    span = (min(r["gd_accuracy"] for r in rows), max(r["gd_accuracy"] for r in rows))
    per_seed = [v for v in tr.get("per_seed_slope", {}).values() if v is not None]
    within = (f"; within each seed the slope is positive for {sum(v > 0 for v in per_seed)} of {len(per_seed)}"
              if per_seed else "")
    control = table[protocol]["trends"].get(f"N={N:g} minus N={max(widths):g}", {})
    control_text = ("" if control.get("slope") is None else
                    f"; the theory at N = {N:g} minus the theory at N = {max(widths):g} (the part that finite width "
                    f"adds) has slope {control['slope']:+.3f} [{control['slope_ci'][0]:+.3f}, "
                    f"{control['slope_ci'][1]:+.3f}]")
    return (f"across {tr['n']} checkpoints (GD {protocol}-test accuracy {100 * span[0]:.1f}-{100 * span[1]:.1f}%), "
            f"Delta(N = {N:g}) {grows} with the network's accuracy: slope {tr['slope']:+.3f} points per point "
            f"[{lo:+.3f}, {hi:+.3f}] (points taken as independent), r = {tr['r']:.2f}{within}; the line reads "
            f"{100 * tr['value_at']:+.1f} points "
            f"[{100 * tr['value_at_ci'][0]:+.1f}, {100 * tr['value_at_ci'][1]:+.1f}] at {100 * tr['at']:.1f}%"
            + (" (an extrapolation beyond the measured range)" if tr["extrapolated"] else "") + control_text)


def run_strength(settings: StrengthSettings | None = None, out="results/oneshot-strength", resume: bool = False,
                 log=print, progress: bool = False) -> dict:
    """Train every seed, redo the claim at its chosen checkpoints, and summarise (module docstring)."""
    s = settings or StrengthSettings()
    out = Path(out)
    e = build_episodes(s)
    baseline = {name: float(np.mean(patch_correlation_baseline(ep, e.config) == ep.y))
                for name, ep in e.evaluation_sets().items() if name != "ood"}
    log("patch-correlation baseline: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in baseline.items()))
    points, nets = [], {}
    with Runner(out, "oneshot-strength", s, resume, log) as run:
        for seed in s.seeds:
            rs = s.run_settings(seed)
            net = run.stage(f"train.s{seed}", train_stage, rs, e, run.partial(f"train.s{seed}"), run.resume,
                            progress, log)
            steps = pick_steps(net.curve, s.checkpoints)
            log(f"seed {seed}: checkpoints at steps {steps}")
            nets[seed] = {"curve": net.curve, "best_step": net.best_step, "steps": steps,
                          "seconds_per_step": net.seconds_per_step}
            for step in steps:
                name = f"point.s{seed}.t{step}"
                p = run.stage(name, point_stage, rs, e, net.at_step(step), run.partial(name), log)
                points.append(dataclasses.asdict(p))
        table = strength_table(points, s.widths, s.extrapolate_to, s.confidence)
        results = {"experiment": "oneshot-strength", "settings": s.to_dict(), "baseline": baseline,
                   "networks": {str(k): v for k, v in nets.items()}, "points": points, "table": table,
                   "verdict": {p: strength_verdict(table, s.widths, p) for p in PROTOCOLS},
                   "timings": dict(run.timings)}
        write_json_atomic(out / "results.json", results)
    for p in PROTOCOLS:
        log(f"strength verdict ({p}): {results['verdict'][p]}")
    return results


def _run_for_cli(settings, out, resume, log):
    results = run_strength(settings, out, resume, log, progress=settings.progress)
    log(f"wrote {Path(out) / 'results.json'}")
    return results


def _figures(results: dict, out) -> list:
    from attnpaths.experiments.oneshot.figures import strength_figures

    return strength_figures(results, out)


def format_strength(results: dict, protocol: str = "cross") -> list[str]:
    """The table of one protocol as Markdown rows: per checkpoint the GD and GP accuracies, Delta(N) with its
    interval and McNemar p at every width, and the U_GD and best-subset headroom (points)."""
    widths = [f"{N:g}" for N in results["settings"]["widths"]]
    pt = lambda v: f"{100 * v:+.1f}"
    head = ["seed", "step", "GD val.", f"GD {protocol}", "GP"] + [f"Δ(N={N})" for N in widths] + \
        ["U_GD − GP", "best subset − GP"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results["table"][protocol]["rows"]:
        cells = [str(r["seed"]), str(r["step"]), f"{100 * r['gd_validation_accuracy']:.1f}",
                 f"{100 * r['gd_accuracy']:.1f}", f"{100 * r['gp_accuracy']:.1f}"]
        for N in widths:
            t = r["theory"][N]
            cells.append("n/a" if t is None else f"{pt(t['delta'])} [{pt(t['ci'][0])}, {pt(t['ci'][1])}] "
                                                 f"p={t['mcnemar_p']:.2g}")
        cells += [f"{pt(r[k]['delta'])} [{pt(r[k]['ci'][0])}, {pt(r[k]['ci'][1])}]"
                  for k in ("gp_kernel_U_GD", "gp_subset")]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _report(results: dict, seconds: float) -> list[str]:
    return [f"{len(results['points'])} checkpoints over seeds {results['settings']['seeds']} (cross pairs):",
            *format_strength(results)]


EXPERIMENTS.register("oneshot-strength", Experiment(
    name="oneshot-strength", help="the one-shot claim against the trained network's accuracy: Delta(N) and the "
                                  "U_GD headroom at checkpoints from chance to the best, over seeds, with a trend",
    settings=StrengthSettings, presets=PRESETS, run=_run_for_cli, report=_report, figures=_figures))
