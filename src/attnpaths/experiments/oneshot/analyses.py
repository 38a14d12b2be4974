"""Stages of the one-shot experiment after the claim (draw 0, smallest width, its validation T): Fig. 3 c-f.

    samples     blocked Gibbs draws of the real network's posterior (time-boxed; OUT/samples/*.npz, resumable)
    order       U at the smallest N: theory, sampled, gradient descent (U_GD)
    alignment   kernel PC / label overlap, finite width vs GP
    heads       head scores vs the GD model's accuracy drop when a head is pruned, pruning curves (score order,
                reversed, random orders), rank correlations; gradient head importance for comparison
    ood         (Omniglot) digits 0 vs 1 episodes: GD model, theory per N, GP

Pruning curves never empty a layer: for a given head order the last head of each layer in that order is kept (it
is moved to the end), so L (H_l - 1) heads are pruned in the order given and every curve has the same length.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import attnpaths as ap
from attnpaths._src import training as tr
from attnpaths._src.sampling.diagnostics import convergence_warning
from attnpaths.experiments.oneshot.data import EpisodeSets
from attnpaths.experiments.oneshot.settings import OneShotSettings
from attnpaths.experiments.oneshot.theory import Features, TheoryGrid, theory_spec
from attnpaths.experiments.oneshot.train import TrainedNetwork
from attnpaths.experiments.sampling import compare_with_theory, draw_posterior, draws_file


def smallest(choices: dict) -> tuple[float, float | None]:
    """(N, T): the smallest width and its validation temperature."""
    c = min(choices["per_width"], key=lambda r: r["N"])
    return c["N"], c["T_validation"]


@dataclass(frozen=True)
class Analysis:
    """Output of an analysis stage: a JSON-able dict for results.json."""

    result: dict


def samples_stage(s: OneShotSettings, out: Path, grid: TheoryGrid, choices: dict, f: Features, resume: bool,
                  log, sample=None) -> Analysis:
    """Gibbs draws at the smallest width and its validation T. Without `sample` (SampleSettings) the draws are
    time-boxed by the run's settings; with it (`attnpaths sample`), its counts are used as given."""
    N, T = smallest(choices) if sample is None or not sample.widths else (min(sample.widths), None)
    if T is None:
        T = next(c["T_validation"] for c in choices["per_width"] if c["N"] == N)
    if T is None:
        return Analysis({"N": N, "error": "no converged theory solution at this width"})
    spec = theory_spec(s).with_width(N).replace(temperature=T)
    xt, yt = f.sets["test_cross"][0], f.sets["test_cross"][1]
    method = "gibbs" if sample is None else sample.method
    path = draws_file(out, method, N, T)
    kw = dict(n_chains=s.sample_chains, n_warmup=s.sample_warmup, seed=s.seed, path=path, resume=True,
              progress=False)
    if sample is not None:
        kw.update(n_chains=sample.n_chains, n_warmup=sample.n_warmup, seed=sample.seed, resume=resume)
        draws = draw_posterior(method, spec, f.train_x, f.train_y, xt, n_draws=sample.n_samples, **kw)
        budget = None
    else:
        if not resume and path.exists():
            path.unlink()
        t0 = time.perf_counter()
        first = min(s.sample_first_draws, s.sample_draws)
        draws = draw_posterior(method, spec, f.train_x, f.train_y, xt, n_draws=first, **kw)
        n = first
        if s.sample_draws > first:  # as many more as fit in the time box, from the measured cost per sweep
            per_sweep = max(draws.seconds, 1e-9) / (first + s.sample_warmup)
            left = s.sample_seconds - (time.perf_counter() - t0)
            n = int(min(s.sample_draws, first + max(0.0, 0.9 * left / per_sweep)))
            if n > first:
                draws = draw_posterior(method, spec, f.train_x, f.train_y, xt, n_draws=n, **kw)
        budget = s.sample_seconds
    row = compare_with_theory(draws, spec, f.train_x, f.train_y, xt, yt, grid.U(N, T)[0], method)
    row.update(evaluated_on="test_cross", time_box_seconds=budget)
    log(f"samples N={N:g} T={T:g}: {row['n_chains']} chains x {row['n_draws']} draws, accuracy "
        f"{100 * row['accuracy']:.1f}% (theory {100 * row['theory_accuracy']:.1f}%), |mean - theory|/|theory| = "
        f"{row['relative_error_mean']:.3f} (Monte Carlo floor {row['monte_carlo_floor']:.3f}), max R-hat "
        f"{row['max_rhat']:.2f}, min ESS {row['min_ess']:.0f}")
    warning = convergence_warning(row["max_rhat"], row["min_ess"], f"N={N:g} T={T:g}",
                                  ("--sample-draws", "--sample-warmup", "--sample-chains"))
    if warning:
        log(warning)
    return Analysis(row)


def order_stage(s: OneShotSettings, grid: TheoryGrid, choices: dict, net: TrainedNetwork,
                samples: dict | None) -> Analysis:
    N, T = smallest(choices)
    U_gd = tr.gd_order_parameter(net.weights())
    scale = float(np.max(np.abs(U_gd)))
    return Analysis({
        "N": N, "T": T, "labels": ap.path_labels(tuple(s.heads)),
        "theory": None if T is None else grid.U(N, T)[0], "sampled": None if samples is None else samples.get("U"),
        "gd": U_gd / scale, "gd_scale": scale,
        "correlation_theory_gd": None if T is None else float(np.corrcoef(grid.U(N, T)[0].ravel(),
                                                                            U_gd.ravel())[0, 1]),
        "note": "gd = w_pi . w_pi' (w_pi = a^T V_2[h2] V_1[h1]) divided by its largest |entry| (gd_scale)",
    })


def alignment_stage(s: OneShotSettings, grid: TheoryGrid, choices: dict, f: Features) -> Analysis:
    N, T = smallest(choices)
    y, spec = f.train_y, theory_spec(s)
    n_pcs = min(s.alignment_pcs, len(y))
    gp = ap.pc_alignment(np.asarray(ap.gp_kernel(spec, f.train_x, f.train_x)), y, n_pcs)
    out = {"N": N, "T": T, "n_pcs": n_pcs, "gp": gp.overlaps, "gp_eigenvalues": gp.eigenvalues}
    if T is not None:
        K = ap.renormalized_kernel(np.asarray(grid.U(N, T)[0]), f.train_x, f.train_x, spec.variances[0])
        fw = ap.pc_alignment(np.asarray(K), y, n_pcs)
        out.update(finite_width=fw.overlaps, finite_width_eigenvalues=fw.eigenvalues)
        out["cumulative_overlap_sq_top10"] = {"finite_width": float(np.sum(fw.overlaps[:10] ** 2)),
                                              "gp": float(np.sum(gp.overlaps[:10] ** 2))}
    return Analysis(out)


def _spearman(a, b) -> dict:
    from scipy.stats import spearmanr

    res = spearmanr(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    rho, p = float(res.statistic), float(res.pvalue)
    return {"rho": None if math.isnan(rho) else rho, "p_value": None if math.isnan(p) else p}


def pruning_order(order, heads) -> list[tuple[int, int]]:
    """`order` ((layer, head) pairs, every head once) with the last head of each layer moved to the end:
    pruning the first sum_l (H_l - 1) heads of the result never empties a layer (see the module docstring)."""
    order = [(int(l), int(h)) for l, h in order]
    last = {}
    for i, (l, _) in enumerate(order):
        last[l] = i
    kept = sorted(last.values())
    return [o for i, o in enumerate(order) if i not in kept] + [order[i] for i in kept]


def pruning_curve(params, x, y, order, heads) -> np.ndarray:
    """Accuracy after pruning k = 0 .. sum_l (H_l - 1) heads in `pruning_order(order)`."""
    n_removable = sum(h - 1 for h in heads)
    curve = tr.prune_accuracy_curve(params, x, y, pruning_order(order, heads))
    return curve[: n_removable + 1]


def _label(o) -> str:
    return f"({o[0] + 1}){o[1] + 1}"


def heads_stage(s: OneShotSettings, grid: TheoryGrid, choices: dict, net: TrainedNetwork, e: EpisodeSets,
                log) -> Analysis:
    N, T = smallest(choices)
    if T is None:
        return Analysis({"error": "no converged theory solution at the smallest width"})
    heads, p = tuple(s.heads), net.weights()
    x, y = e.test["cross"].x, e.test["cross"].y
    hs = ap.head_scores(grid.U(N, T)[0], heads)
    base = tr.gd_accuracy(p, x, y)
    single = tr.single_head_drop_accuracy(p, x, y)
    theory_train = e.theory_train(s, 0)
    grad = tr.head_importance_gradient(p, theory_train.x, theory_train.y)
    layer, head = np.asarray(hs.layer), np.asarray(hs.head)
    acc_without = single[layer, head]
    drop = base - acc_without
    order = list(zip(layer.tolist(), head.tolist()))
    rng = np.random.default_rng([s.seed, 7])
    random_orders = [[order[i] for i in rng.permutation(len(order))] for _ in range(s.random_orders)]
    curves = {"score_ascending": pruning_curve(p, x, y, order, heads),
              "score_descending": pruning_curve(p, x, y, order[::-1], heads)}
    random_curves = np.stack([pruning_curve(p, x, y, o, heads) for o in random_orders])
    out = {
        "N": N, "T": T, "evaluated_on": "test_cross", "base_accuracy": base,
        "order": [{"layer": int(l), "head": int(h), "label": _label((l, h))} for l, h in order],
        "labels": hs.labels(), "score": hs.score, "accuracy_without": acc_without, "accuracy_drop": drop,
        "gradient_importance": grad[layer, head], "single_head_accuracy_matrix": single,
        "gradient_importance_matrix": grad,
        "spearman_score_vs_drop": _spearman(hs.score, drop),
        "spearman_gradient_vs_drop": _spearman(grad[layer, head], drop),
        "pruning": {
            "k": list(range(len(curves["score_ascending"]))),
            "score_ascending": curves["score_ascending"], "score_descending": curves["score_descending"],
            "orders": {"score_ascending": [_label(o) for o in pruning_order(order, heads)],
                       "score_descending": [_label(o) for o in pruning_order(order[::-1], heads)]},
            "random_mean": random_curves.mean(axis=0), "random_std": random_curves.std(axis=0, ddof=1),
            "random_curves": random_curves, "n_random": len(random_orders),
            "rule": "each layer's last head in the order is kept (moved to the end); L (H_l - 1) heads pruned",
        },
    }
    rs, rg = out["spearman_score_vs_drop"], out["spearman_gradient_vs_drop"]
    log(f"heads: accuracy drops {', '.join(f'{lab} {100 * d:.1f}' for lab, d in zip(out['labels'], drop))} "
        f"(points, ascending score); Spearman(score, drop) rho={rs['rho']} p={rs['p_value']}; "
        f"Spearman(gradient importance, drop) rho={rg['rho']} p={rg['p_value']}")
    return Analysis(out)


def ood_stage(s: OneShotSettings, grid: TheoryGrid, choices: dict, gd_accuracy: float, f: Features,
              log) -> Analysis:
    xo, y = f.sets["ood"][0], f.sets["ood"][1]
    spec = theory_spec(s)
    per_width = []
    for c in choices["per_width"]:
        N, T = c["N"], c["T_validation"]
        acc = None if T is None else ap.accuracy(ap.predict(spec.with_width(N).replace(temperature=T), f.train_x,
                                                            f.train_y, xo, grid.U(N, T)[0]).mean, y)
        per_width.append({"N": N, "T": T, "accuracy": acc})
    Tg = choices["gp"]["T_validation"]
    gp = ap.accuracy(ap.predict(spec.replace(temperature=Tg), f.train_x, f.train_y, xo).mean, y)
    out = {"task": "scikit-learn digits 0 vs 1 (spec E.1: MNIST 0/1)", "n_episodes": len(y),
           "gd_accuracy": gd_accuracy, "theory": per_width, "gp_T": Tg, "gp_accuracy": gp}
    log(f"ood: GD {100 * gd_accuracy:.1f}%, GP {100 * gp:.1f}%, theory " + ", ".join(
        f"N={r['N']:g} " + ("-" if r["accuracy"] is None else f"{100 * r['accuracy']:.1f}%") for r in per_width))
    return Analysis(out)
