"""Figures of experiment 1 (Fig. 2), drawn from a Markov results dictionary only (never recomputed here)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from attnpaths.experiments.plots import alignment_panel, order_parameter_panel  # noqa: E402

GP_STYLES = {"all paths": "-", "good": "--", "good+denoising": ":", "g+d": "-"}


def gp_lines(gp_accuracy: dict) -> list[tuple[float, str, str]]:
    """(accuracy, line style, legend label) of each distinct GP reference line, in the order of gp_accuracy.

    References with the same accuracy share one line: the 2-path network's reference 'g+d' is the network
    itself, and two lines drawn on top of each other would show one while the legend names two."""
    merged: dict[float, list[str]] = {}
    for name, value in gp_accuracy.items():
        merged.setdefault(float(value), []).append(name)
    lines = []
    for value, names in merged.items():
        labels = ["all paths" if n == "all paths" else f"paths {n}" for n in names]
        label = "GP, " + labels[0] if len(labels) == 1 else "GP, " + " = ".join(labels) + " (coincide)"
        lines.append((value, GP_STYLES.get(names[0], "-."), label))
    return lines


def markov_figures(results: dict, out: str | Path) -> list[Path]:
    """accuracy_vs_width.png, order_parameters.png, alignment.png from a Markov results dictionary."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    theory = results["theory"]
    N = np.array([t["N"] for t in theory])
    acc = np.array([t["accuracy"] for t in theory])
    files = []

    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.plot(N, 100 * acc, "x-", color="tab:blue", label="theory")
    if "samples" in results:
        s = results["samples"]
        ax.plot([r["N"] for r in s], [100 * r["accuracy"] for r in s], "o", color="k", label="samples")
    for value, style, label in gp_lines(results["gp_accuracy"]):
        ax.axhline(100 * value, color="tab:red", ls=style, lw=1.2, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("width N")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"hidden Markov chain, {results['inputs']['network']}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    files.append(out / "accuracy_vs_width.png")
    fig.savefig(files[-1], dpi=130)
    plt.close(fig)

    order = list(results["display_order"])
    names = [results["path_names"][i] for i in order]
    picks = sorted({0, len(theory) // 2, len(theory) - 1}, key=lambda i: N[i])
    sampled = {r["N"]: r for r in results.get("samples", []) if "U" in r}
    rows = 2 if sampled else 1
    fig, axes = plt.subplots(rows, len(picks), figsize=(3.4 * len(picks), 3.0 * rows), squeeze=False)
    for j, i in enumerate(picks):
        U = np.asarray(theory[i]["U"][0])[np.ix_(order, order)]
        order_parameter_panel(axes[0, j], U, names, f"theory U, N = {N[i]:g}")
        if sampled:
            r = sampled.get(float(N[i]))
            if r is None:
                axes[1, j].axis("off")
            else:
                order_parameter_panel(axes[1, j], np.asarray(r["U"])[np.ix_(order, order)], names,
                                      f"sampled U, N = {N[i]:g}")
    fig.tight_layout()
    files.append(out / "order_parameters.png")
    fig.savefig(files[-1], dpi=130)
    plt.close(fig)

    al = results["alignment"]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    alignment_panel(ax, al["finite_width"], al["gp"], al["N"])
    fig.tight_layout()
    files.append(out / "alignment.png")
    fig.savefig(files[-1], dpi=130)
    plt.close(fig)
    return files
