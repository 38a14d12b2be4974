"""Figures of the one-shot experiment and of its multi-seed study, drawn from results.json only."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from attnpaths.experiments.plots import alignment_panel, order_parameter_panel  # noqa: E402

DPI = 130
PROTOCOL_TITLES = {"cross": "pairs across all test characters (paper)", "within": "pairs within one run/alphabet"}


def _nan(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _save(fig, path: Path, files: list) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    files.append(path)


def _title(results: dict) -> str:
    inp = results["inputs"]
    return (f"one-shot {inp['data']}, N0 = {inp['token_width']}, P = {inp['theory']['P']}, "
            f"{len(inp['theory']['heads'])} layers x {inp['theory']['heads'][0]} heads")


def _errorbar(ax, x, stats_rows, scale, **kw):
    m = np.array([r["mean"] for r in stats_rows]) * scale
    lo = np.array([r["ci"][0] for r in stats_rows]) * scale
    hi = np.array([r["ci"][1] for r in stats_rows]) * scale
    ax.errorbar(x, m, yerr=[m - lo, hi - m], capsize=3, **kw)


def accuracy_figure(results: dict, path: Path, files: list) -> None:
    """Fig. 3b: test accuracy vs N with 95% character-bootstrap intervals, both protocols, GP band."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, (protocol, c) in zip(axes, results["claim"].items()):
        theory = [r for r in c["methods"] if r["kind"] == "theory"]
        N = np.array([r["N"] for r in theory])
        _errorbar(ax, N, [r["accuracy"] for r in theory], 100, fmt="x-", color="tab:blue",
                  label="theory (T by validation)")
        gp = next(r for r in c["methods"] if r["kind"] == "gp")
        ax.axhline(100 * gp["accuracy"]["mean"], color="tab:red", lw=1.3, label=f"GP (T = {gp['T']:g})")
        ax.axhspan(100 * gp["accuracy"]["ci"][0], 100 * gp["accuracy"]["ci"][1], color="tab:red", alpha=0.12)
        for kind, style in (("gp_subset", "--"), ("gp_kernel_U_GD", ":")):
            r = next((r for r in c["methods"] if r["kind"] == kind), None)
            if r is not None:
                ax.axhline(100 * r["accuracy"]["mean"], color="tab:purple", ls=style, lw=1.1, label=r["name"])
        gd = results["gd"]["accuracy"].get(f"test_{protocol}")
        if gd is not None:
            ax.axhline(100 * gd, color="0.3", ls="-.", lw=1.1, label="GD-trained network")
        opt = (results.get("choices", {}).get("test_chosen") or {}).get("protocols", {}).get(protocol)
        if opt is not None:
            rows = [r for r in opt["per_width"] if r["accuracy"] is not None]
            ax.plot([r["N"] for r in rows], [100 * r["accuracy"] for r in rows], "+--", color="tab:cyan",
                    label="theory, T by test (authors' rule, optimistic)")
            ax.axhline(100 * opt["gp"]["accuracy"], color="tab:red", ls="--", lw=0.9, alpha=0.6,
                       label=f"GP, T by test (optimistic, T = {opt['gp']['T']:g})")
        s = results.get("samples")
        if protocol == "cross" and s and s.get("accuracy") is not None:
            ax.plot([s["N"]], [100 * s["accuracy"]], "o", color="k", ms=6, label="samples (Gibbs)")
        ax.set_xscale("log")
        ax.set_xlabel("width N")
        ax.set_title(PROTOCOL_TITLES.get(protocol, protocol), fontsize=9)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("novel-class test accuracy (%)")
    fig.suptitle(_title(results) + "; bars: 95% bootstrap over test characters", fontsize=9)
    _save(fig, path, files)


def claim_figure(results: dict, path: Path, files: list) -> None:
    """Delta(N) = accuracy(theory) - accuracy(GP) with intervals, both protocols."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for k, (protocol, c) in enumerate(results["claim"].items()):
        theory = [r for r in c["methods"] if r["kind"] == "theory"]
        N = np.array([r["N"] for r in theory]) * (1.06 if k else 1.0)
        d = np.array([r["delta_accuracy"]["delta"] for r in theory]) * 100
        lo = np.array([r["delta_accuracy"]["ci"][0] for r in theory]) * 100
        hi = np.array([r["delta_accuracy"]["ci"][1] for r in theory]) * 100
        line = ax.errorbar(N, d, yerr=[d - lo, hi - d], fmt="o-" if k == 0 else "s--", capsize=3,
                           label=PROTOCOL_TITLES.get(protocol, protocol))
        opt = (results.get("choices", {}).get("test_chosen") or {}).get("protocols", {}).get(protocol)
        if opt is not None:
            rows = [r for r in opt["per_width"] if r["delta"] is not None]
            ax.plot(np.array([r["N"] for r in rows]) * (1.06 if k else 1.0), [100 * r["delta"] for r in rows],
                    "^:", color=line[0].get_color(), alpha=0.5, label=f"{protocol}, T by test (optimistic)")
    ax.axhline(0, color="0.4", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("width N")
    ax.set_ylabel("theory - GP accuracy (points)")
    ax.set_title("the claim of Fig. 3b, paired on the same test episodes (95% intervals)", fontsize=9)
    ax.legend(fontsize=7)
    _save(fig, path, files)


def training_figure(results: dict, path: Path, files: list) -> None:
    c = results["gd"]["curve"]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(c["step"], 100 * np.asarray(c["train_accuracy"]), "-", label="training episodes (fresh, running mean)")
    ax.plot(c["step"], 100 * np.asarray(c["val_accuracy"]), "o-", label="validation (held-out classes)")
    ax.axvline(results["gd"]["best_step"], color="0.5", ls=":", lw=1, label="kept checkpoint")
    ax.set_xlabel("step")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("gradient-descent training", fontsize=9)
    ax.legend(fontsize=7)
    _save(fig, path, files)


def order_parameter_figure(results: dict, path: Path, files: list, suffix: str = "") -> None:
    """Fig. 3c: U at the smallest width, from the theory, the samples and the trained network (U_GD)."""
    o = results["order_parameters"]
    panels = [("theory", f"theory U, N = {o['N']:g}, T = {o['T']}{suffix}"),
              ("sampled", f"sampled U, N = {o['N']:g}{suffix}"), ("gd", f"gradient descent (normalised){suffix}")]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    for ax, (key, title) in zip(axes, panels):
        if o.get(key) is None:
            ax.text(0.5, 0.5, f"no {key} U", ha="center", va="center", transform=ax.transAxes)
            ax.axis("off")
            continue
        order_parameter_panel(ax, np.asarray(o[key]), o["labels"], title)
    _save(fig, path, files)


def alignment_figure(results: dict, path: Path, files: list) -> None:
    al = results["alignment"]
    fig, ax = plt.subplots(figsize=(9, 3.4))
    if al.get("finite_width") is not None:
        alignment_panel(ax, al["finite_width"], al["gp"], al["N"])
    else:
        ax.bar(np.arange(1, len(al["gp"]) + 1), al["gp"], label="GP limit")
        ax.legend(fontsize=8)
    ax.set_title(f"kernel PC overlap with the labels, first {al['n_pcs']} PCs (T = {al['T']} at N = {al['N']:g})",
                 fontsize=9)
    _save(fig, path, files)


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def head_score_figure(results: dict, path: Path, files: list) -> None:
    h = results["heads"]
    x = np.arange(len(h["labels"]))
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    ax.bar(x - 0.2, h["score"], 0.4, color="tab:blue", label="head score (theory, normalised)")
    ax.set_ylabel("head score", color="tab:blue")
    ax.set_ylim(0, 1.4)  # headroom for the legend
    ax.set_yticks(np.linspace(0, 1, 6))
    ax2 = ax.twinx()
    drop = 100 * np.asarray(h["accuracy_drop"], dtype=np.float64)
    ax2.bar(x + 0.2, drop, 0.4, color="tab:red", label="accuracy drop when pruned (GD model)")
    ax2.set_ylabel("accuracy drop (points)", color="tab:red")
    ax2.set_ylim(1.4 * min(0.0, float(np.min(drop))), 1.4 * max(float(np.max(drop)), 0.5))
    ax2.axhline(0, color="0.5", lw=0.6)
    ax.set_xticks(x, h["labels"])
    ax.set_xlabel("head (layer)head, ascending score")
    rs, rg = h["spearman_score_vs_drop"], h["spearman_gradient_vs_drop"]
    ax.set_title(f"N = {h['N']:g}, T = {h['T']}; Spearman(score, drop) = {_fmt(rs['rho'])} "
                 f"(p = {_fmt(rs['p_value'])}); gradient importance: {_fmt(rg['rho'])} (p = {_fmt(rg['p_value'])})",
                 fontsize=7)
    l1, l2 = ax.get_legend_handles_labels(), ax2.get_legend_handles_labels()
    ax.legend(l1[0] + l2[0], l1[1] + l2[1], fontsize=7, loc="upper left", ncol=2)
    _save(fig, path, files)


def pruning_figure(results: dict, path: Path, files: list) -> None:
    p = results["heads"]["pruning"]
    k = np.asarray(p["k"])
    fig, ax = plt.subplots(figsize=(5.4, 3.8))
    ax.plot(k, 100 * _nan(p["score_ascending"]), "o-", color="tab:blue", label="lowest head score first")
    ax.plot(k, 100 * _nan(p["score_descending"]), "s-", color="tab:red", label="highest head score first")
    m, sd = 100 * _nan(p["random_mean"]), 100 * _nan(p["random_std"])
    ax.plot(k, m, "^-", color="0.4", label=f"random order (mean ± std, {p['n_random']} orders)")
    ax.fill_between(k, m - sd, m + sd, color="0.6", alpha=0.3)
    ax.axhline(50, color="0.7", lw=0.8, ls=":")
    ax.set_xticks(k)
    ax.set_xlabel("number of pruned heads")
    ax.set_ylabel("GD model test accuracy (%)")
    ax.set_title("pruning the GD-trained network (no retraining)", fontsize=9)
    ax.legend(fontsize=7)
    _save(fig, path, files)


def ood_figure(results: dict, path: Path, files: list) -> None:
    o = results["ood"]
    rows = o["theory"]
    fig, ax = plt.subplots(figsize=(5.4, 3.8))
    ax.plot([r["N"] for r in rows], 100 * _nan(r["accuracy"] for r in rows), "x-", color="tab:blue",
            label="theory (validation T)")
    ax.axhline(100 * o["gp_accuracy"], color="tab:red", lw=1.3, label=f"GP (T = {o['gp_T']:g})")
    ax.axhline(100 * o["gd_accuracy"], color="0.3", ls=":", lw=1.3, label="GD-trained network")
    ax.set_xscale("log")
    ax.set_xlabel("width N")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"out of distribution: {o['task']}", fontsize=8)
    ax.legend(fontsize=7)
    _save(fig, path, files)


def oneshot_figures(results: dict, out) -> list[Path]:
    """accuracy_vs_width, claim, training, order_parameters, alignment, head_scores, pruning, ood_accuracy
    (.png), each when its part of the results is there."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    plan = [("claim", accuracy_figure, "accuracy_vs_width.png"), ("claim", claim_figure, "claim.png"),
            ("gd", training_figure, "training.png"),
            ("order_parameters", order_parameter_figure, "order_parameters.png"),
            ("alignment", alignment_figure, "alignment.png"), ("heads", head_score_figure, "head_scores.png"),
            ("heads", pruning_figure, "pruning.png"), ("ood", ood_figure, "ood_accuracy.png")]
    for key, fn, name in plan:
        if key in results and not (key == "heads" and "score" not in results["heads"]):
            fn(results, out / name, files)
    return files


def study_figures(results: dict, out) -> list[Path]:
    """study_accuracy.png: Fig. 3b over seeds x draws (mean, error bars = std across seeds), and
    study_delta.png: Delta(N) per seed x draw with its mean."""
    out = Path(out)
    files: list[Path] = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, (protocol, s) in zip(axes, results["summary"].items()):
        rows = s["per_width"]
        N = np.array([r["N"] for r in rows])
        m = 100 * np.array([r["theory_accuracy"]["mean"] for r in rows])
        sd = 100 * _nan(r["theory_accuracy"]["std_across_seeds"] for r in rows)
        ax.errorbar(N, m, yerr=sd, fmt="x-", capsize=3, color="tab:blue", label="theory (mean ± std across seeds)")
        opt = s.get("test_chosen")
        if opt:
            ax.plot([r["N"] for r in opt["per_width"]], [100 * r["theory_accuracy"]["mean"] for r in opt["per_width"]],
                    "+--", color="tab:cyan", label="theory, T by test (authors' rule, optimistic)")
            ax.axhline(100 * opt["gp_accuracy"]["mean"], color="tab:red", ls="--", lw=0.9, alpha=0.6,
                       label="GP, T by test (optimistic)")
        sampled = results.get("samples")
        if sampled and protocol == (sampled.get("evaluated_on") or "test_cross").removeprefix("test_"):
            a = sampled["accuracy"]
            ax.errorbar([sampled["N"]], [100 * a["mean"]], yerr=100 * _nan([a["std_across_seeds"]]), fmt="o",
                        color="k", ms=6, capsize=3, label=f"samples (Gibbs), {sampled['n_seeds']} seeds")
        gd = [a.get(f"test_{protocol}") for a in (results.get("gd_accuracy") or {}).values()]
        if gd and None not in gd:
            ax.axhline(100 * np.mean(gd), color="0.3", ls="-.", lw=1.1, label="GD-trained networks (mean)")
        g = s["gp_accuracy"]
        ax.axhline(100 * g["mean"], color="tab:red", label="GP (mean ± std across seeds)")
        if g["std_across_seeds"] is not None:
            ax.axhspan(100 * (g["mean"] - g["std_across_seeds"]), 100 * (g["mean"] + g["std_across_seeds"]),
                       color="tab:red", alpha=0.12)
        ax.set_xscale("log")
        ax.set_xlabel("width N")
        ax.set_title(PROTOCOL_TITLES.get(protocol, protocol), fontsize=9)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("novel-class test accuracy (%)")
    fig.suptitle(f"one-shot, {len(results['seeds'])} training seeds x {results['theory_draws']} draws of the "
                 "P theory examples", fontsize=9)
    _save(fig, out / "study_accuracy.png", files)
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for k, (protocol, s) in enumerate(results["summary"].items()):
        rows = s["per_width"]
        N = np.array([r["N"] for r in rows]) * (1.06 if k else 1.0)
        m = 100 * np.array([r["delta_accuracy"]["mean"] for r in rows])
        sd = 100 * _nan(r["delta_accuracy"]["std_across_seeds"] for r in rows)
        line = ax.errorbar(N, m, yerr=sd, fmt="o-" if k == 0 else "s--", capsize=3,
                           label=PROTOCOL_TITLES.get(protocol, protocol))
        opt = s.get("test_chosen")
        if opt:
            ax.plot(np.array([r["N"] for r in opt["per_width"]]) * (1.06 if k else 1.0),
                    [100 * r["delta_accuracy"]["mean"] for r in opt["per_width"]], "^:", color=line[0].get_color(),
                    alpha=0.5, label=f"{protocol}, T by test (optimistic)")
    ax.axhline(0, color="0.4", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("width N")
    ax.set_ylabel("theory - GP accuracy (points)")
    ax.set_title("Delta(N): mean over seeds x draws, bars = std across seeds", fontsize=9)
    ax.legend(fontsize=7)
    _save(fig, out / "study_delta.png", files)
    if results.get("order_parameters"):
        o = results["order_parameters"]
        order_parameter_figure({"order_parameters": o}, out / "study_order_parameters.png", files,
                               f" (seed {o['seed']})")
    return files


def strength_figures(results: dict, out) -> list[Path]:
    """`strength.png`: per protocol, Delta(N) at the smallest width and the U_GD headroom (accuracy of the kernel
    with U_GD minus the GP's) against the GD network's test accuracy, one marker per seed, with the 95%
    character-bootstrap intervals, the fitted lines (dashed beyond the measured range, to the paper's 83.8%) and
    the patch-correlation baseline's accuracy."""
    files: list[Path] = []
    widths = results["settings"]["widths"]
    N = f"{min(widths):g}"
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharex=True)
    for col, protocol in enumerate(("cross", "within")):
        t = results["table"][protocol]
        seeds = sorted({r["seed"] for r in t["rows"]})
        for row, (key, label) in enumerate(((f"delta N={N}", f"theory at N = {N} minus GP"),
                                            ("U_GD headroom", "kernel with U_GD minus GP"))):
            ax = axes[row, col]
            for k, seed in enumerate(seeds):
                rows = [r for r in t["rows"] if r["seed"] == seed]
                cells = [r["theory"][N] if row == 0 else r["gp_kernel_U_GD"] for r in rows]
                keep = [i for i, c in enumerate(cells) if c is not None]
                x = np.array([rows[i]["gd_accuracy"] for i in keep]) * 100
                d = np.array([cells[i]["delta"] for i in keep]) * 100
                lo = np.array([cells[i]["ci"][0] for i in keep]) * 100
                hi = np.array([cells[i]["ci"][1] for i in keep]) * 100
                ax.errorbar(x, d, yerr=[d - lo, hi - d], fmt="o", ms=4, capsize=2, color=f"C{k}",
                            label=f"seed {seed}")
            tr = t["trends"][key]
            if tr.get("slope") is not None:
                xs = np.array([r["gd_accuracy"] for r in t["rows"]])
                inside = np.linspace(xs.min(), xs.max(), 20)
                beyond = np.linspace(xs.max(), max(tr["at"], xs.max()), 20)
                for xx, ls in ((inside, "-"), (beyond, "--")):
                    ax.plot(100 * xx, 100 * (tr["intercept"] + tr["slope"] * xx), "k", ls=ls, lw=1)
                ci = 100 * np.array(tr["value_at_ci"])
                ax.errorbar([100 * tr["at"]], [100 * tr["value_at"]], yerr=[[100 * tr["value_at"] - ci[0]],
                                                                           [ci[1] - 100 * tr["value_at"]]],
                            fmt="s", color="k", mfc="none", capsize=3,
                            label=f"trend at {100 * tr['at']:.1f}% (extrapolated)" if tr["extrapolated"]
                            else f"trend at {100 * tr['at']:.1f}%")
            base = results["baseline"].get(f"test_{protocol}")
            if base is not None:
                ax.axvline(100 * base, color="grey", ls=":", lw=1, label="patch-correlation baseline")
            ax.axhline(0, color="k", lw=0.5)
            ax.set_ylabel(f"{label} (points)")
            ax.set_title(f"{PROTOCOL_TITLES[protocol]}", fontsize=10)
            ax.grid(alpha=0.3)
            if row == 1:
                ax.set_xlabel(f"GD network accuracy, {protocol} test (%)")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("the theory's gain over the GP against how well the heads are trained")
    _save(fig, Path(out) / "strength.png", files)
    return files
