"""What the order parameter says about the task: kernel-task alignment and head scores (spec D.4, E.6)."""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from attnpaths._src.checks import as_count, as_float_array, as_labels
from attnpaths._src.spec import check_heads


class Alignment(NamedTuple):
    """eigenvalues: (k,) of the kernel, decreasing; overlaps: (k,) |phi_k^T Y| / |Y| for the same PCs."""

    eigenvalues: np.ndarray
    overlaps: np.ndarray


def pc_alignment(K, y, n_components: int | None = None) -> Alignment:
    """Overlap of the kernel's principal components with the labels, ranked by eigenvalue (spec D.4).

    K: (P, P) training kernel WITHOUT the temperature term; y: (P,), not all zero. For +-1 labels
    |Y| = sqrt(P), so this is the paper's |phi_k^T Y| / sqrt(P). n_components: keep the top ones (int >= 1);
    default all P.
    """
    K = as_float_array("K", K, ndim=2)
    if K.shape[0] != K.shape[1]:
        raise ValueError(f"K must be square (P, P); got {K.shape}")
    y = as_labels("y", y, K.shape[0])
    if not np.any(y):
        raise ValueError("y must not be all zero (the overlaps are normalised by |y|)")
    if n_components is not None:
        n_components = as_count("n_components", n_components)
    lam, phi = np.linalg.eigh(0.5 * (K + K.T))
    order = np.argsort(lam)[::-1][:n_components]
    return Alignment(lam[order], np.abs(phi[:, order].T @ y) / np.linalg.norm(y))


class HeadScores(NamedTuple):
    """Heads sorted by ascending score. layer, head: (n,) 0-based indices; score: (n,) normalised to max 1."""

    layer: np.ndarray
    head: np.ndarray
    score: np.ndarray

    def labels(self) -> list[str]:
        """Plot labels "(l)h", 1-based, as in the paper's Fig. 3e."""
        return [f"({l + 1}){h + 1}" for l, h in zip(self.layer, self.head)]


def head_scores(U1, heads: Sequence[int], normalize: bool = True) -> HeadScores:
    """Score of head h in layer l: the sum of |U_pi,pi'| over path pairs in which at least one path goes
    through (l, h) (spec E.6). U1: (H, H) in the library's path order (lower layer outermost).
    """
    heads = check_heads(heads)
    H = int(np.prod(heads))
    absU = np.abs(as_float_array("U1", U1, shape=(H, H))).reshape(heads + heads)
    L = len(heads)
    layers, idx, scores = [], [], []
    for l, n in enumerate(heads):
        for h in range(n):
            first = np.take(absU, h, axis=l).sum()
            second = np.take(absU, h, axis=L + l).sum()
            both = np.take(np.take(absU, h, axis=L + l), h, axis=l).sum()
            layers.append(l)
            idx.append(h)
            scores.append(first + second - both)
    scores = np.asarray(scores)
    if normalize:
        if scores.max() == 0:
            raise ValueError("U1 is zero, so the head scores cannot be normalised; use normalize=False")
        scores = scores / scores.max()
    order = np.argsort(scores, kind="stable")
    return HeadScores(np.asarray(layers)[order], np.asarray(idx)[order], scores[order])


def format_order_parameter(U, labels: Sequence[str], order: Sequence[int] | None = None, digits: int = 2) -> str:
    """U as a text table with path labels on both axes, e.g. `format_order_parameter(U1, path_labels(heads))`.

    order: optional display order of the paths (e.g. (0, 2, 1, 3) for the paper's g, d, a1, a2).
    """
    U = as_float_array("U", U, ndim=2)
    digits = as_count("digits", digits, minimum=0)
    order = list(range(U.shape[0])) if order is None else list(order)
    if U.shape[0] != U.shape[1] or len(labels) != U.shape[0] or sorted(order) != list(range(U.shape[0])):
        raise ValueError(f"U must be square with one label per path and order a permutation; got U {U.shape}, "
                         f"{len(labels)} labels, order {order}")
    names = [str(labels[i]) for i in order]
    width = max(max(len(n) for n in names), digits + 5)
    lines = [" " * width + " " + " ".join(f"{n:>{width}}" for n in names)]
    for i, n in zip(order, names):
        lines.append(f"{n:>{width}} " + " ".join(f"{U[i, j]:>{width}.{digits}f}" for j in order))
    return "\n".join(lines)
