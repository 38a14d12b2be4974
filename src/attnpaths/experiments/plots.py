"""Panels shared by the experiments' figures (drawn from results files only, never recomputed here); each
experiment's own figures are in its folder (`markov/figures.py`, `oneshot/figures.py`)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def order_parameter_panel(ax, U, names, title):
    """U as a heat map, RdBu centred at 0, paths labelled."""
    U = np.asarray(U)
    vmax = float(np.max(np.abs(U))) or 1.0
    im = ax.imshow(U, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
    ax.set_xticks(range(len(names)), names, rotation=90 if len(names) > 6 else 0, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_title(title, fontsize=9)
    plt.colorbar(im, ax=ax, fraction=0.046, pad=0.04)


def alignment_panel(ax, finite, gp, n_label):
    k = np.arange(1, len(finite) + 1)
    ax.bar(k - 0.2, finite, 0.4, label=f"finite width N = {n_label:g}")
    ax.bar(k + 0.2, gp, 0.4, label="GP limit")
    ax.set_xlabel("kernel PC (decreasing eigenvalue)")
    ax.set_ylabel(r"$|\phi_k^T Y| / |Y|$")
    ax.legend(fontsize=8)
