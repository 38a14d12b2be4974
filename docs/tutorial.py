# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tutorial: your own heads and data
#
# This page is a notebook (`docs/tutorial.py`, jupytext percent format) that is executed every time the site
# is built, so every output below comes from the current library. It goes through the whole workflow on a
# problem you define yourself:
#
# 1. attention heads (random query/key heads here) and synthetic data with a known answer;
# 2. the path-aggregated inputs, `path_features`;
# 3. the order parameter, `solve_saddle`, at several widths;
# 4. the finite-width predictor against its GP limit, `predict`;
# 5. which heads matter, `head_scores`;
# 6. a plot.
#
# The equations behind each step are on [the theory page](../theory/).

# %%
import matplotlib.pyplot as plt
import numpy as np

import attnpaths as ap  # turns on JAX float64

rng = np.random.default_rng(1)

# %% [markdown]
# ## 1. Heads and data
#
# Two attention layers with two query/key heads each, so $H = 2 \times 2 = 4$ attention paths. A `QKHeads`
# layer scores key $s$ against query $t$ as $(K x_s)\cdot(Q x_t)/\sqrt{G}$ and normalises over the keys.
# Inputs are $P$ sequences of $T$ tokens of width $N_0$, stored as `(P, N0, T)` (tokens as columns).

# %%
N0, n_tokens, G = 8, 6, 4                # token width, tokens per sequence, query/key dimension
heads = (2, 2)                            # H_1, H_2
attention = [ap.QKHeads(Q=rng.normal(size=(h, G, N0)) / np.sqrt(N0),
                        K=rng.normal(size=(h, G, N0)) / np.sqrt(N0)) for h in heads]
spec = ap.NetworkSpec(heads=heads, widths=10, temperature=0.01, readout="last")

P, P_test = 150, 1000
x = rng.normal(size=(P + P_test, N0, n_tokens))
print(spec)
print("paths:", ap.path_labels(spec.heads))

# %% [markdown]
# ## 2. Path features
#
# `path_features` multiplies the attention matrices along every path and aggregates the tokens:
# $\xi_\pi = x_\pi / \sqrt{N_0 H}$, shape `(P, N0, H)`. The paths are ordered with the first layer's head
# outermost, so path index 2 is `"2,1"` (head 2 of layer 1, then head 1 of layer 2).
#
# The labels are made by a *teacher* that reads a single path, `"2,1"`, through a random linear readout.
# A network that finds this path should weight it above the others.

# %%
xi_all = ap.path_features(spec, attention, x)
teacher_path = ap.path_labels(spec.heads).index("2,1")
v = rng.normal(size=N0)
y = np.sign(np.asarray(xi_all[:, :, teacher_path]) @ v)

xi, xi_test = xi_all[:P], xi_all[P:]
y_train, y_test = y[:P], y[P:]
print("xi:", xi.shape, " labels +1:", int((y_train > 0).sum()), "of", P)

# %% [markdown]
# Attention you computed yourself works too: one array of shape `(P, H_l, T, T)` per layer, indexed
# [key, query]. Here we compute the same attention with `attention_matrices` and check that the path
# features agree.

# %%
precomputed = ap.attention_matrices(attention, x[:P])
print([a.shape for a in precomputed])
assert np.allclose(ap.path_features(spec, precomputed, x[:P]), xi)

# %% [markdown]
# ## 3. The order parameter at several widths
#
# `solve_widths` minimises the action $S(U)$ for every width (all layers equal), largest first, each
# solve warm-started from the previous one. Every `Saddle` reports its convergence: the largest entry of
# $\partial S/\partial U$ and the smallest eigenvalue of the Hessian (positive at a minimum).

# %%
widths = [5, 10, 30, 100, 1000]
saddles = ap.solve_widths(spec, xi, y_train, widths)
for s in saddles:
    print(f"N = {s.spec.widths[0]:6g}: {s.iterations} Newton steps, max|dS/dU| = {s.grad_max:.1e}, "
          f"min Hessian eigenvalue = {s.min_hessian_eigenvalue:.2e}")

# %% [markdown]
# At $N = 10$ the order parameter puts the largest weight on the teacher's path `"2,1"`; at $N = 1000$ it
# is close to its GP value, the identity.

# %%
labels = ap.path_labels(spec.heads)
print("N = 10\n" + ap.format_order_parameter(saddles[1].U1, labels))
print("N = 1000\n" + ap.format_order_parameter(saddles[-1].U1, labels))
assert np.argmax(np.diag(saddles[1].U1)) == teacher_path  # what the text above says

# %% [markdown]
# ## 4. Finite width against the GP limit
#
# `predict` with the solved $U_1$ gives the finite-width predictor; without it, the GP limit (all paths
# weighted equally, no cross-path kernels).

# %%
gp = ap.predict(spec, xi, y_train, xi_test)
gp_accuracy = ap.accuracy(gp.mean, y_test)
accuracies = []
for s in saddles:
    pred = ap.predict(s.spec, xi, y_train, xi_test, s.U1)
    accuracies.append(ap.accuracy(pred.mean, y_test))
    print(f"N = {s.spec.widths[0]:6g}: accuracy {accuracies[-1]:.3f}")
print(f"GP limit:     accuracy {gp_accuracy:.3f}")
assert all(abs(a - gp_accuracy) < 0.03 for a in accuracies)  # what the text below says

# %% [markdown]
# On this task the finite-width network and the GP generalise about equally well: the teacher is linear in
# the features of one path, which the GP kernel already contains, and $P = 150$ examples are enough for
# both. Whether path interplay *helps* depends on the task; on the paper's hidden Markov chain it does, by
# more than ten points (see [the Markov experiment](../experiments/markov/)). What the order parameter
# does here is tell us *which* path carries the task.
#
# ## 5. Head scores
#
# The score of head $h$ in layer $\ell$ sums $|U_{\pi\pi'}|$ over all path pairs in which at least one path
# goes through that head (normalised to a maximum of 1, sorted ascending). The teacher's path goes through
# head 2 of layer 1 and head 1 of layer 2, labelled `(1)2` and `(2)1`.

# %%
scores = ap.head_scores(saddles[1].U1, spec.heads)
for label, score in zip(scores.labels(), scores.score):
    print(f"{label}: {score:.2f}")
assert set(scores.labels()[-2:]) == {"(1)2", "(2)1"}  # the teacher's heads score highest

# %% [markdown]
# ## 6. A plot

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
left.semilogx(widths, accuracies, "x-", label="theory (finite width)")
left.axhline(gp_accuracy, color="r", label="GP limit")
left.set_xlabel("width N")
left.set_ylabel("test accuracy")
left.legend()
U = saddles[1].U1
vmax = np.abs(U).max()
image = right.imshow(U, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
right.set_xticks(range(len(labels)), labels)
right.set_yticks(range(len(labels)), labels)
right.set_title("$U_1$ at N = 10")
fig.colorbar(image, ax=right)
fig.tight_layout()
plt.show()
