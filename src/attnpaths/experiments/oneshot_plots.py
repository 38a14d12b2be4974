"""Figures of the one-shot experiment (Fig. 3 b-f, and the OOD extra), drawn from results.json only."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from attnpaths.experiments.plots import alignment_panel, order_parameter_panel

DPI = 130


def _nan(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _save(fig, path: Path, files: list) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    files.append(path)


def _title(results: dict) -> str:
    inp = results["inputs"]
    return f"one-shot {inp['data']}, P = {inp['theory']['P']}, {len(inp['theory']['heads'])} layers x " \
           f"{inp['theory']['heads'][0]} heads"


def accuracy_figure(results: dict, path: Path, files: list) -> None:
    rows = results["choices"]["per_width"]
    N = np.array([r["N"] for r in rows])
    fig, (ax, axT) = plt.subplots(1, 2, figsize=(9.5, 3.8), gridspec_kw={"width_ratios": [1.6, 1]})
    ax.plot(N, 100 * _nan(r["test_accuracy_validation_T"] for r in rows), "x-", color="tab:blue",
            label="theory, T by validation")
    ax.plot(N, 100 * _nan(r["test_accuracy_evidence_T"] for r in rows), "+--", color="tab:green",
            label="theory, T by evidence (min S)")
    gp = results["gp"]
    ax.axhline(100 * gp["test_accuracy"], color="tab:red", lw=1.3, label=f"GP (T = {gp['T_validation']:g})")
    ax.axhline(100 * results["gd"]["test_accuracy"], color="0.3", ls=":", lw=1.3, label="GD-trained network")
    s = results.get("samples")
    if s and s.get("accuracy") is not None:
        ax.plot([s["N"]], [100 * s["accuracy"]], "o", color="k", ms=6, label="samples (Gibbs)")
    ax.set_xscale("log")
    ax.set_xlabel("width N")
    ax.set_ylabel("novel-class test accuracy (%)")
    ax.set_title(_title(results), fontsize=9)
    ax.legend(fontsize=7)
    axT.plot(N, _nan(r["T_validation"] for r in rows), "x-", color="tab:blue", label="validation")
    axT.plot(N, _nan(r["T_evidence"] for r in rows), "+--", color="tab:green", label="evidence (min S)")
    axT.axhline(gp["T_validation"], color="tab:red", lw=1, label="GP (validation)")
    axT.set_xscale("log")
    axT.set_yscale("log")
    axT.set_xlabel("width N")
    axT.set_ylabel("chosen temperature T")
    axT.set_title("temperature choice", fontsize=9)
    axT.legend(fontsize=7)
    _save(fig, path, files)


def order_parameter_figure(results: dict, path: Path, files: list) -> None:
    o = results["order_parameters"]
    names = o["labels"]
    panels = [("theory", f"theory U, N = {o['N']:g}, T = {o['T']}"),
              ("sampled", f"sampled U, N = {o['N']:g}"),
              ("gd", "gradient descent (normalised)")]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    for ax, (key, title) in zip(axes, panels):
        if o.get(key) is None:
            ax.text(0.5, 0.5, f"no {key} U", ha="center", va="center", transform=ax.transAxes)
            ax.axis("off")
            continue
        order_parameter_panel(ax, np.asarray(o[key]), names, title)
    _save(fig, path, files)


def alignment_figure(results: dict, path: Path, files: list) -> None:
    al = results["alignment"]
    fig, ax = plt.subplots(figsize=(9, 3.4))
    if al.get("finite_width") is not None:
        alignment_panel(ax, al["finite_width"], al["gp"], al["N"])
    else:
        k = np.arange(1, len(al["gp"]) + 1)
        ax.bar(k, al["gp"], label="GP limit")
        ax.legend(fontsize=8)
    ax.set_title(f"kernel PC overlap with the labels, first {al['n_pcs']} PCs (T = {al['T']} at N = {al['N']:g})",
                 fontsize=9)
    _save(fig, path, files)


def head_score_figure(results: dict, path: Path, files: list) -> None:
    h = results["heads"]
    labels = h["labels"]
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    ax.bar(x - 0.2, h["score"], 0.4, color="tab:blue", label="head score (theory, normalised)")
    ax.set_ylabel("head score", color="tab:blue")
    ax.set_ylim(0, 1.4)  # headroom for the legend
    ax.set_yticks(np.linspace(0, 1, 6))
    ax2 = ax.twinx()
    drop = 100 * np.asarray(h["accuracy_drop"], dtype=np.float64)
    ax2.bar(x + 0.2, drop, 0.4, color="tab:red", label="accuracy drop when pruned (GD model)")
    ax2.set_ylabel("accuracy drop (points)", color="tab:red")
    lo = min(0.0, float(np.min(drop)))
    ax2.set_ylim(1.4 * lo, 1.4 * max(float(np.max(drop)), 0.5))
    ax2.axhline(0, color="0.5", lw=0.6)
    ax.set_xticks(x, labels)
    ax.set_xlabel("head (layer)head, ascending score")
    rs, rg = h["spearman_score_vs_drop"], h["spearman_gradient_vs_drop"]
    ax.set_title(f"N = {h['N']:g}, T = {h['T']}; Spearman(score, drop) = {_fmt(rs['rho'])} "
                 f"(p = {_fmt(rs['p_value'])}); gradient importance: {_fmt(rg['rho'])} (p = {_fmt(rg['p_value'])})",
                 fontsize=7)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=7, loc="upper left", ncol=2)
    _save(fig, path, files)


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def pruning_figure(results: dict, path: Path, files: list) -> None:
    h = results["heads"]
    p = h["pruning"]
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
    N = np.array([r["N"] for r in rows])
    fig, ax = plt.subplots(figsize=(5.4, 3.8))
    ax.plot(N, 100 * _nan(r["accuracy"] for r in rows), "x-", color="tab:blue", label="theory (validation T)")
    ax.axhline(100 * o["gp_accuracy"], color="tab:red", lw=1.3, label=f"GP (T = {o['gp_T']:g})")
    ax.axhline(100 * o["gd_accuracy"], color="0.3", ls=":", lw=1.3, label="GD-trained network")
    ax.set_xscale("log")
    ax.set_xlabel("width N")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"out of distribution: {o['task']}", fontsize=8)
    ax.legend(fontsize=7)
    _save(fig, path, files)


def oneshot_figures(results: dict, out) -> list[Path]:
    """accuracy_vs_width, order_parameters, alignment, head_scores, pruning (.png), and ood_accuracy.png when
    the results hold an OOD evaluation. Stages that are missing from `results` are skipped."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    plan = [("choices", accuracy_figure, "accuracy_vs_width.png"),
            ("order_parameters", order_parameter_figure, "order_parameters.png"),
            ("alignment", alignment_figure, "alignment.png"),
            ("heads", head_score_figure, "head_scores.png"),
            ("heads", pruning_figure, "pruning.png"),
            ("ood", ood_figure, "ood_accuracy.png")]
    for key, fn, name in plan:
        if key not in results or (key == "heads" and "score" not in results["heads"]):
            continue
        fn(results, out / name, files)
    return files
