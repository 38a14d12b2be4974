"""The multi-seed study of experiment 2: the claim over several trained networks and draws of the theory's P
examples, as one command (`attnpaths oneshot-study`).

For every seed in `seeds`, a complete one-shot run (training seed = that seed, `theory_draws` draws of the P
examples, the analyses listed in `analyses`, none by default) goes to OUT/seed<k>/ (its own resumable run). The
stage `seed<k>` of the study keeps that run's claim tables; the study's results.json reports, per width and
protocol, the mean of Delta(N) = accuracy(theory) - accuracy(GP) over all seeds x draws, the spread across seeds
(standard deviation of the per-seed means), the range, how many of the seeds x draws are positive, and the same
for the accuracies themselves (Fig. 3b with error bars: `study_accuracy.png`). With the `samples` analysis in
`analyses`, every seed's sampled network at the smallest width is summarised beside the theory there (the black
dots of Fig. 3b); with `order`, `study_order_parameters.png` shows U at that width for the first seed: theory,
sampled and U_GD (Fig. 3c).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attnpaths._src.store import jsonable
from attnpaths.experiments.base import EXPERIMENTS, Experiment
from attnpaths.experiments.io import write_json_atomic
from attnpaths.experiments.oneshot.compare import OPTIMISTIC
from attnpaths.experiments.oneshot.data import PROTOCOLS
from attnpaths.experiments.oneshot.run import run_oneshot
from attnpaths.experiments.oneshot.settings import ANALYSES, PRESETS, OneShotSettings
from attnpaths.experiments.runner import Runner
from attnpaths.experiments.settings import at_least, each, setting


@dataclass(frozen=True)
class StudySettings(OneShotSettings):
    """The one-shot settings (seed is replaced by each of `seeds`) and the study's own."""

    theory_draws: int = setting(3, "independent draws of the P theory examples per seed", check=at_least(1))
    analyses: tuple[str, ...] = setting((), "analyses to run in every seed's run (none: the claim only)",
                                        choices=ANALYSES)
    seeds: tuple[int, ...] = setting((0, 1, 2, 3, 4), "training seeds (one trained network each)",
                                     check=each(at_least(0)))

    def run_settings(self, seed: int) -> OneShotSettings:
        return self.one_shot_run(seed=seed)


@dataclass(frozen=True)
class SeedRun:
    """Output of stage `seed<k>`: what the study needs from that seed's run."""

    seed: int
    gd_accuracy: dict
    draws: list  # per draw: {"claim": ..., "choices": ..., "verdict": ...}
    samples: dict | None = None  # the run's "samples" analysis (draw 0, smallest width), when it ran
    order_parameters: dict | None = None  # its "order" analysis (U: theory, sampled, U_GD), when it ran


def seed_stage(s: StudySettings, seed: int, out: Path, resume: bool, log) -> SeedRun:
    r = run_oneshot(s.run_settings(seed), out / f"seed{seed}", resume, log)
    draws = r.get("draws") or [{"draw": 0, "claim": r["claim"], "choices": r["choices"], "verdict": r["verdict"]}]
    return SeedRun(seed, r["gd"]["accuracy"], [{k: d[k] for k in ("claim", "choices", "verdict")} for d in draws],
                   samples=jsonable(r.get("samples")), order_parameters=jsonable(r.get("order_parameters")))


def _spread(per_seed: list[list[float]]) -> dict:
    """Mean over all seeds x draws, std across seeds of the per-seed means, min, max, count > 0."""
    flat = np.array([v for vals in per_seed for v in vals], dtype=np.float64)
    seed_means = np.array([np.mean(v) for v in per_seed])
    return {"mean": float(flat.mean()), "std_across_seeds": float(seed_means.std(ddof=1)) if len(seed_means) > 1
            else None, "min": float(flat.min()), "max": float(flat.max()), "n_positive": int(np.sum(flat > 0)),
            "n": int(flat.size), "per_seed_mean": seed_means.tolist()}


def summarize_test_chosen(runs: list[SeedRun], protocol: str) -> dict | None:
    """The optimistic table (T chosen on the test set, the authors' rule) across seeds x draws: per width the
    spread of Delta(N) and of the theory's accuracy, and the GP's; None when a run predates it."""
    tables = [[d["choices"].get("test_chosen") for d in run.draws] for run in runs]
    if any(t is None for ts in tables for t in ts):
        return None
    tables = [[t["protocols"][protocol] for t in ts] for ts in tables]
    widths = [r["N"] for r in tables[0][0]["per_width"]]
    per_N = []
    for i, N in enumerate(widths):
        rows = [[t["per_width"][i] for t in ts] for ts in tables]
        if any(r["accuracy"] is None for rs in rows for r in rs):
            continue
        per_N.append({"N": N, "delta_accuracy": _spread([[r["delta"] for r in rs] for rs in rows]),
                      "theory_accuracy": _spread([[r["accuracy"] for r in rs] for rs in rows])})
    return {"label": OPTIMISTIC, "per_width": per_N,
            "gp_accuracy": _spread([[t["gp"]["accuracy"] for t in ts] for ts in tables])}


def summarize_samples(runs: list[SeedRun]) -> dict | None:
    """The sampled network at the smallest width (Fig. 3b's black dots) across seeds: its test accuracy, the
    theory's on the same episodes (the draw-0 U at the same N and T), their difference, and how close the sampled
    predictor and U are to the theory's; None when no seed sampled."""
    rows = [r.samples for r in runs if r.samples and r.samples.get("accuracy") is not None]
    if not rows:
        return None
    N = min(row["N"] for row in rows)  # every seed samples at the smallest width of the same grid
    rows = [row for row in rows if row["N"] == N]
    keys = ("accuracy", "theory_accuracy", "relative_error_mean", "monte_carlo_floor", "relative_error_U")
    out = {key: _spread([[row[key]] for row in rows]) for key in keys}
    return dict(out, N=N, n_seeds=len(rows), seeds=[r.seed for r in runs if r.samples in rows],
                T=[row["T"] for row in rows], evaluated_on=rows[0].get("evaluated_on"),
                delta_sampled_minus_theory=_spread([[row["accuracy"] - row["theory_accuracy"]] for row in rows]),
                max_rhat=max(row["max_rhat"] for row in rows), min_ess=min(row["min_ess"] for row in rows))


def summarize_study(runs: list[SeedRun]) -> dict:
    """Per protocol and width: Delta(N) and the accuracies of theory and GP across seeds x draws (and the same
    with T chosen on the test set, optimistic, under "test_chosen")."""
    out = {}
    for protocol in PROTOCOLS:
        widths = sorted({r["N"] for run in runs for d in run.draws for r in d["claim"][protocol]["methods"]
                         if r["kind"] == "theory"})
        per_N = []
        for N in widths:
            def collect(key, kind="theory"):
                return [[next(r for r in d["claim"][protocol]["methods"] if r["kind"] == kind
                              and (kind != "theory" or r["N"] == N))[key]
                         for d in run.draws] for run in runs]
            delta = collect("delta_accuracy")
            p_values = [v["p_value"] for vals in collect("mcnemar") for v in vals]
            per_N.append({"N": N,
                          "delta_accuracy": _spread([[v["delta"] for v in vals] for vals in delta]),
                          "n_ci_above_zero": sum(v["ci"][0] > 0 for vals in delta for v in vals),
                          "n_ci_below_zero": sum(v["ci"][1] < 0 for vals in delta for v in vals),
                          "n_mcnemar_p_below_0.05": sum(p < 0.05 for p in p_values),
                          "theory_accuracy": _spread([[v["mean"] for v in vals] for vals in collect("accuracy")]),
                          "delta_mse": _spread([[v["delta"] for v in vals] for vals in collect("delta_mse")]),
                          "delta_gaussian_accuracy": _spread([[v["delta"] for v in vals]
                                                              for vals in collect("delta_gaussian_accuracy")])})
        gp = [[next(r for r in d["claim"][protocol]["methods"] if r["kind"] == "gp")["accuracy"]["mean"]
               for d in run.draws] for run in runs]
        extra = {kind: _spread([[next(r for r in d["claim"][protocol]["methods"] if r["kind"] == kind)
                                 ["delta_accuracy"]["delta"] for d in run.draws] for run in runs])
                 for kind in ("gp_subset", "gp_kernel_U_GD")}
        out[protocol] = {"per_width": per_N, "gp_accuracy": _spread(gp), "delta_vs_gp": extra,
                         "test_chosen": summarize_test_chosen(runs, protocol)}
    return out


def study_verdict(summary: dict, protocol: str = "cross") -> str:
    rows = summary[protocol]["per_width"]
    if not rows:
        return "no converged theory solution"
    r = rows[0]
    d = r["delta_accuracy"]
    best = max(rows, key=lambda r: r["delta_accuracy"]["mean"])
    sd = d["std_across_seeds"]
    return (f"over {d['n']} seeds x draws, theory at N = {r['N']:g} minus GP is {100 * d['mean']:+.1f} points "
            f"on average (spread across seeds {'n/a' if sd is None else f'{100 * sd:.1f}'} points; "
            f"{d['n_positive']}/{d['n']} positive, {r['n_ci_above_zero']} with the 95% interval above 0 and "
            f"{r['n_ci_below_zero']} below); the best width is N = {best['N']:g} with "
            f"{100 * best['delta_accuracy']['mean']:+.1f} points ({protocol} pairs)")


def run_study(settings: StudySettings | None = None, out="results/oneshot-study", resume: bool = False,
              log=print) -> dict:
    """Run every seed (each its own resumable one-shot run in OUT/seed<k>) and summarise (module docstring)."""
    s = settings or StudySettings()
    out = Path(out)
    with Runner(out, "oneshot-study", s, resume, log) as run:
        runs = [run.stage(f"seed{seed}", seed_stage, s, seed, out, resume, log) for seed in s.seeds]
        summary = summarize_study(runs)
        results = {"experiment": "oneshot-study", "settings": s.to_dict(), "seeds": list(s.seeds),
                   "theory_draws": s.theory_draws, "summary": summary,
                   "verdict": {p: study_verdict(summary, p) for p in PROTOCOLS},
                   "gd_accuracy": {str(r.seed): r.gd_accuracy for r in runs},
                   "samples": summarize_samples(runs),
                   "order_parameters": next((dict(r.order_parameters, seed=r.seed) for r in runs
                                             if r.order_parameters), None),
                   "runs": [f"seed{seed}" for seed in s.seeds], "timings": dict(run.timings)}
        write_json_atomic(out / "results.json", results)
    for p in PROTOCOLS:
        log(f"study verdict ({p}): {results['verdict'][p]}")
    return results


def _run_for_cli(settings, out, resume, log):
    results = run_study(settings, out, resume, log)
    for p in PROTOCOLS:
        t = results["summary"][p].get("test_chosen")
        if t and t["per_width"]:
            r = t["per_width"][0]
            log(f"optimistic ({p}, T chosen on the test set as the authors did): theory at N = {r['N']:g} minus GP "
                f"{100 * r['delta_accuracy']['mean']:+.1f} points on average, theory "
                f"{100 * r['theory_accuracy']['mean']:.1f}%, GP {100 * t['gp_accuracy']['mean']:.1f}%")
    s = results.get("samples")
    if s:
        log(f"samples (Gibbs) at N = {s['N']:g}, {s['n_seeds']} seeds: accuracy {100 * s['accuracy']['mean']:.1f}% "
            f"against the theory's {100 * s['theory_accuracy']['mean']:.1f}% on the same episodes "
            f"({100 * s['delta_sampled_minus_theory']['mean']:+.1f} points), |mean - theory|/|theory| "
            f"{s['relative_error_mean']['mean']:.3f} (Monte Carlo floor {s['monte_carlo_floor']['mean']:.3f}), "
            f"max R-hat {s['max_rhat']:.2f}")
    log(f"wrote {Path(out) / 'results.json'}")
    return results


def _figures(results: dict, out) -> list:
    from attnpaths.experiments.oneshot.figures import study_figures

    return study_figures(results, out)


def _report(results: dict, seconds: float) -> list[str]:
    return [f"{len(results['seeds'])} seeds x {results['theory_draws']} draws"]


EXPERIMENTS.register("oneshot-study", Experiment(
    name="oneshot-study", help="the one-shot claim over several training seeds x draws of the theory examples "
                               "(mean and spread of Delta(N); Fig. 3b with error bars)",
    settings=StudySettings, presets=PRESETS, run=_run_for_cli, report=_report, figures=_figures))
