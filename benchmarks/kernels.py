"""Kernel assembly at scale: P = 5000 training examples, 2 layers x 4 heads (16 paths), Markov-task tokens.

Prints time and peak resident memory of each stage next to the size the dense path-path tensor
C (H, H, P, P) would need, which the library never forms.

    python benchmarks/kernels.py [--P 5000]
"""

from __future__ import annotations

import argparse
import resource
import time

import jax
import numpy as np

import attnpaths as ap
from attnpaths._src.tasks.markov import MarkovConfig, markov_dataset, markov_layer


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # Linux: kB


def main(P: int, n_test: int = 1000):
    cfg = MarkovConfig()
    layer1 = markov_layer([("same_token", 0.0, 0)] + [("blank", 1.0, s) for s in (147, 148, 149)], cfg, 10.0)
    layer2 = markov_layer([("uniform", 0.0, 0)] + [("blank", 1.0, s) for s in (247, 248, 249)], cfg, 10.0)
    spec = ap.NetworkSpec(heads=(4, 4), widths=100.0, temperature=0.01, readout="last")
    rows = []
    t = time.perf_counter()
    train, test = markov_dataset(cfg, P, 27), markov_dataset(cfg, n_test, 59)
    rows.append(("data", time.perf_counter() - t))
    t = time.perf_counter()
    xi = ap.path_features(spec, [layer1, layer2], train.x, chunk_size=256)
    xit = ap.path_features(spec, [layer1, layer2], test.x, chunk_size=256)
    jax.block_until_ready(xi)
    rows.append(("path features (chunks of 256)", time.perf_counter() - t))
    U = np.eye(spec.n_paths) + 0.1
    t = time.perf_counter()
    K = jax.block_until_ready(ap.renormalized_kernel(U, xi, xi))
    rows.append(("K_U train-train", time.perf_counter() - t))
    t = time.perf_counter()
    pred = ap.predict(spec, xi, train.y, xit, U)
    rows.append(("predictor (Cholesky + test)", time.perf_counter() - t))
    H = spec.n_paths
    print(f"P = {P}, test = {n_test}, paths H = {H}, N0 = {xi.shape[1]}, devices {jax.devices()}")
    print("| stage                          | wall (s) |")
    print("|--------------------------------|----------|")
    for name, sec in rows:
        print(f"| {name:<30} | {sec:>8.2f} |")
    print(f"\npeak resident memory: {peak_gb():.2f} GB; xi {xi.nbytes / 1e9:.2f} GB, K {K.nbytes / 1e9:.2f} GB; "
          f"a dense C (H, H, P, P) would need {H * H * P * P * 8 / 1e9:.1f} GB")
    print(f"sanity (U = I + 0.1): mean |f| = {np.mean(np.abs(pred.mean)):.3f}, accuracy {ap.accuracy(pred.mean, test.y):.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--P", type=int, default=5000)
    main(parser.parse_args().P)
