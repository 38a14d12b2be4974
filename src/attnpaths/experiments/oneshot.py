"""Experiment 2 (spec E, Fig. 3): one-shot in-context image classification, end to end, one call.

`run_oneshot` builds the episodes, trains the gradient-descent (GD) attention network, transfers its learned
query/key weights to the theory, solves the action on a (width, temperature) grid, picks the temperature per
width, samples the network's posterior at the smallest width, and analyses the heads (theory head score vs the
GD model's accuracy drop when a head is pruned). `OUT/results.json` is rewritten atomically after every stage;
the figures (`oneshot_plots.py`) are drawn from it alone.

Stages (each named in results["completed"] when done; `resume=True` skips finished ones):

  gd          train the GD network (OUT/checkpoint.npz, resumable) and report its accuracies
  theory      solve S(U) for every (N, T) (OUT/theory_solutions.npz holds every U; warm starts along N)
  choices     T per N by validation accuracy and by the action at the minimum (the evidence); GP line
  samples     blocked Gibbs draws at the smallest N with its validation T (OUT/samples/*.npz, time-boxed)
  order       U at the smallest N: theory, sampled, GD
  alignment   kernel PC / label overlap, finite width vs GP
  heads       head scores, single-head pruning drops, pruning curves, rank correlations
  ood         (Omniglot only) digits 0 vs 1 episodes: GD model, theory per N, GP
  figures     oneshot_plots.oneshot_figures

Decisions that differ from the authors' protocol (spec E.4, H.7):

* Temperature selection never looks at the test set. T is chosen per N on a VALIDATION set whose classes are
  disjoint from both the training and the test classes (novel classes, like the test): digits 5, 6 (training
  digits 0-4, test digits 7-9); for Omniglot two held-out background alphabets (`VALIDATION_ALPHABETS`, episodes
  pair two characters of one alphabet, like the official runs used for testing). The GP line uses the same
  validation rule on the same T grid. Ties in validation accuracy go to the lower action. A second,
  data-free choice is reported next to it: the T with the lowest action S at the minimum (S * N_max is
  -2 log evidence up to T-independent constants, so S is comparable across T at fixed N). The authors' choice
  (best test accuracy) is stored too, as "test_selected", for reference only.
* Pruning curves never empty a layer: for a given head order the last head of each layer in that order is kept
  (it is moved to the end), so L (H_l - 1) heads are pruned in the order given and every curve has the same
  length. Random orders are shuffled the same way.
* Digits: a 5 / 2 / 3 class split (train / validation / test) rather than 6 / - / 4, since a validation set needs
  classes of its own.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import attnpaths as ap
from attnpaths._src import training as tr
from attnpaths._src.atomic import write_atomic
from attnpaths._src.tasks import oneshot as osd
from attnpaths.experiments.io import read_json, write_json_atomic

DEFAULT_WIDTHS = (10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0)
DEFAULT_TEMPERATURES = (0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5)
DIGIT_SPLIT = {"train": (0, 1, 2, 3, 4), "validation": (5, 6), "test": (7, 8, 9)}
VALIDATION_ALPHABETS = ("Early_Aramaic", "Tagalog")
OOD_DIGITS = (0, 1)
STAGES = ("gd", "theory", "choices", "samples", "order", "alignment", "heads", "ood", "figures")

# ----------------------------------------------------------------------------------------------------------------
# Settings
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OneShotSettings:
    """Everything that determines a run (stored as results["inputs"]; a resumed run must match it)."""

    data: str = "digits"
    seed: int = 0
    n_gd_train: int = 20000
    n_theory_train: int = 600
    n_validation: int = 1000
    n_test: int = 1000
    n_ood: int = 1000
    heads: tuple = (4, 4)
    gd_width: int = 64
    qk_dim: int = 16
    train_steps: int = 2000
    batch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 5e-5
    widths: tuple = DEFAULT_WIDTHS
    temperatures: tuple = DEFAULT_TEMPERATURES
    sample_chains: int = 4
    sample_warmup: int = 50
    sample_draws: int = 400
    sample_first_draws: int = 20
    sample_seconds: float = 240.0
    random_orders: int = 20
    alignment_pcs: int = 50
    quick: bool = False

    def train_config(self) -> tr.TrainConfig:
        return tr.TrainConfig(steps=self.train_steps, batch_size=self.batch_size,
                              learning_rate=self.learning_rate, weight_decay=self.weight_decay, seed=self.seed)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def oneshot_settings(data: str = "digits", quick: bool = False) -> OneShotSettings:
    """Default settings; `quick` is a small configuration that runs in well under a minute."""
    if data not in ("digits", "omniglot"):
        raise ValueError(f"data must be 'digits' or 'omniglot'; got {data!r}")
    if not quick:
        return OneShotSettings(data=data)
    return OneShotSettings(data=data, n_gd_train=3000, n_theory_train=120, n_validation=200, n_test=200,
                           n_ood=200, gd_width=32, qk_dim=8, train_steps=300, batch_size=64,
                           widths=(10.0, 100.0, 1000.0), temperatures=(0.1, 0.5, 1.0), sample_chains=2,
                           sample_warmup=10, sample_draws=20, sample_first_draws=20, sample_seconds=20.0,
                           random_orders=10, alignment_pcs=50, quick=True)

# ----------------------------------------------------------------------------------------------------------------
# Episodes
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EpisodeSets:
    """The episode sets of a run and the class keys behind them (train / validation / test disjoint)."""

    config: osd.EpisodeConfig
    gd_train: osd.Episodes
    theory_train: osd.Episodes
    validation: osd.Episodes
    test: osd.Episodes
    ood: osd.Episodes | None
    classes: dict
    sources: tuple


def _alphabet_groups(keys) -> list[list[str]]:
    groups: dict[str, list[str]] = {}
    for k in sorted(keys):
        groups.setdefault(k.split("/")[0], []).append(k)
    return list(groups.values())


def _class_sorted(ep: osd.Episodes) -> osd.Episodes:
    """Label +1 first, then -1 (stable), as the authors' theory data (spec E.3, H.8)."""
    order = np.argsort(-ep.y, kind="stable")
    return osd.Episodes(ep.x[order], ep.y[order], ep.classes[order])


def build_episodes(settings: OneShotSettings, data_dir=None) -> EpisodeSets:
    """All episode sets of a run, deterministic in settings.seed (independent streams per set).

    Raises FileNotFoundError naming the folder when the Omniglot files are missing.
    """
    s = settings
    val_groups = test_groups = None
    if s.data == "digits":
        config = osd.DIGITS_CONFIG
        imgs = {part: osd.load_digits_by_class(config.image_size, digits) for part, digits in DIGIT_SPLIT.items()}
        sources = ("sklearn.datasets.load_digits",)
    else:
        config = osd.OMNIGLOT_CONFIG
        if data_dir is None:
            data_dir = osd.default_omniglot_dir()
            if data_dir is None:
                raise FileNotFoundError("no Omniglot folder given (data_dir / --data-dir) and none found at "
                                        "<workspace>/shared/data/omniglot; pass the folder holding "
                                        "images_background*.zip and all_runs.zip")
        data_dir = Path(data_dir).resolve()
        if not data_dir.is_dir():
            raise FileNotFoundError(f"Omniglot folder {data_dir} does not exist; pass the folder holding "
                                    "images_background*.zip and all_runs.zip (or images_evaluation.zip)")
        om = osd.load_omniglot(data_dir, config.image_size)
        if not om.background:
            raise ValueError(f"{data_dir}: no background (training) characters found")
        alphabets = sorted({k.split("/")[0] for k in om.background})
        held = [a for a in VALIDATION_ALPHABETS if a in alphabets] or alphabets[-2:]
        if len(alphabets) - len(held) < 1:
            raise ValueError(f"{data_dir}: need at least 3 background alphabets (training + validation); found "
                             f"{alphabets}")
        imgs = {"train": {k: v for k, v in om.background.items() if k.split("/")[0] not in held},
                "validation": {k: v for k, v in om.background.items() if k.split("/")[0] in held}}
        val_groups = _alphabet_groups(imgs["validation"])
        if om.runs:
            imgs["test"], test_groups = om.runs, om.run_groups()
        elif om.evaluation:
            imgs["test"], test_groups = om.evaluation, _alphabet_groups(om.evaluation)
        else:
            raise ValueError(f"{data_dir}: no novel test classes; expected all_runs.zip or images_evaluation.zip")
        sources = tuple(om.sources)
    rng = lambda k: np.random.default_rng([s.seed, k])
    gd_train = osd.make_episodes(imgs["train"], s.n_gd_train, config, rng(0))
    theory_train = _class_sorted(osd.make_episodes(imgs["train"], s.n_theory_train, config, rng(1)))
    validation = osd.make_episodes(imgs["validation"], s.n_validation, config, rng(2), groups=val_groups)
    test = osd.make_episodes(imgs["test"], s.n_test, config, rng(3), groups=test_groups)
    ood = (osd.digits_ood_episodes(s.n_ood, config, OOD_DIGITS, seed=s.seed) if s.data == "omniglot" else None)
    classes = {part: sorted(v) for part, v in imgs.items()}
    return EpisodeSets(config, gd_train, theory_train, validation, test, ood, classes, sources)

# ----------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.3g}"


def _key(N: float, T: float) -> str:
    return f"N{float(N):g}_T{float(T):g}"


def _save_npz_atomic(path: Path, arrays: dict) -> None:
    write_atomic(path, lambda f: np.savez(f, **arrays))


def _load_npz(path: Path) -> dict:
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


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


def _solution_row(N, T, saddle, spec, xi, y, xi_val, y_val, xi_test, y_test, seconds) -> dict:
    pv = ap.predict(spec, xi, y, xi_val, saddle.U1)
    pt = ap.predict(spec, xi, y, xi_test, saddle.U1)
    return {"N": N, "T": T, "converged": bool(saddle.converged), "action": saddle.action,
            "iterations": saddle.iterations, "grad_max": saddle.grad_max,
            "min_hessian_eigenvalue": saddle.min_hessian_eigenvalue, "U_a": saddle.U_a,
            "validation_accuracy": ap.accuracy(pv.mean, y_val), "test_accuracy": ap.accuracy(pt.mean, y_test),
            "test_gaussian_accuracy": ap.gaussian_accuracy(pt, y_test), "seconds": seconds, "error": None}

# ----------------------------------------------------------------------------------------------------------------
# The experiment
# ----------------------------------------------------------------------------------------------------------------


class _Run:
    """State shared by the stages of one call of `run_oneshot`."""

    def __init__(self, settings: OneShotSettings, data_dir, out: Path, resume: bool, log):
        self.s, self.out, self.resume, self.log = settings, out, resume, log
        self.data_dir = data_dir
        self.path = out / "results.json"
        self.npz_path = out / "theory_solutions.npz"
        self.checkpoint = out / "checkpoint.npz"
        self.eps = build_episodes(settings, data_dir)
        self.arch = tr.Architecture(self.eps.config.token_dim, tuple(settings.heads), settings.gd_width,
                                    settings.qk_dim)
        self.spec = ap.NetworkSpec(heads=tuple(settings.heads), widths=float(max(settings.widths)),
                                   variances=1.0, temperature=float(settings.temperatures[0]), readout="mean")
        self.results = self._start_results()
        self.params = None
        self._features = None
        self.solutions = _load_npz(self.npz_path) if resume else {}

    # -- bookkeeping --------------------------------------------------------------------------------------------
    def _inputs(self) -> dict:
        s, e = self.s, self.eps
        return {
            "data": s.data, "data_sources": list(e.sources), "settings": s.to_dict(),
            "episode_config": dataclasses.asdict(e.config),
            "sizes": {"gd_train": len(e.gd_train.y), "theory_train": len(e.theory_train.y),
                      "validation": len(e.validation.y), "test": len(e.test.y),
                      "ood": None if e.ood is None else len(e.ood.y)},
            "seeds": {"episodes": s.seed, "gd_init_and_batches": s.seed, "gibbs": s.seed,
                      "random_pruning_orders": s.seed},
            "architecture": self.arch.to_dict(), "train_config": s.train_config().to_dict(),
            "theory": {"heads": list(self.spec.heads), "variances": list(self.spec.variances),
                       "readout": self.spec.readout, "widths": list(s.widths), "temperatures": list(s.temperatures),
                       "P": len(e.theory_train.y)},
            "classes": e.classes,
            "digit_split": {k: list(v) for k, v in DIGIT_SPLIT.items()} if s.data == "digits" else None,
            "validation_alphabets": (sorted({c.split("/")[0] for c in e.classes["validation"]})
                                     if s.data == "omniglot" else None),
            "ood_digits": list(OOD_DIGITS) if s.data == "omniglot" else None,
        }

    def _start_results(self) -> dict:
        inputs = self._inputs()
        if self.resume and self.path.is_file():
            old = read_json(self.path)
            if old.get("experiment") != "oneshot":
                raise ValueError(f"{self.path} is not a one-shot results file; choose another --out")
            if old.get("inputs") != _roundtrip(inputs):
                diff = sorted(k for k in inputs if _roundtrip(inputs[k]) != old.get("inputs", {}).get(k))
                raise ValueError(f"cannot resume {self.path}: it was made with other inputs ({', '.join(diff)}); "
                                 "use another --out or drop --resume")
            old.setdefault("timings", {})
            old.setdefault("completed", [])
            return old
        return {"experiment": "oneshot", "inputs": inputs, "completed": [], "timings": {}}

    def save(self):
        write_json_atomic(self.path, self.results)

    def done(self, stage: str) -> bool:
        return self.resume and stage in self.results["completed"]

    def finish(self, stage: str, seconds: float):
        if stage not in self.results["completed"]:
            self.results["completed"].append(stage)
        self.results["completed"].sort(key=STAGES.index)
        self.results["timings"][stage] = seconds
        self.save()

    # -- shared quantities --------------------------------------------------------------------------------------
    def features(self) -> dict:
        if self._features is None:
            att = tr.attention_layers(self.params)
            sets = {"train": self.eps.theory_train, "validation": self.eps.validation, "test": self.eps.test}
            if self.eps.ood is not None:
                sets["ood"] = self.eps.ood
            self._features = {k: ap.path_features(self.spec, att, v.x) for k, v in sets.items()}
        return self._features

    def U(self, N: float, T: float) -> tuple | None:
        k = _key(N, T)
        if f"{k}_U1" not in self.solutions:
            return None
        return tuple(self.solutions[f"{k}_U{l + 1}"] for l in range(len(self.s.heads)))

    def row(self, N: float, T: float) -> dict | None:
        for r in self.results.get("theory", {}).get("solutions", []):
            if r["N"] == float(N) and r["T"] == float(T):
                return r
        return None


def _roundtrip(obj):
    import json

    from attnpaths.experiments.io import _to_jsonable

    return json.loads(json.dumps(_to_jsonable(obj)))


def _stage_gd(run: _Run):
    s, e = run.s, run.eps
    if run.resume and run.checkpoint.is_file():
        start_step = tr.load_checkpoint(run.checkpoint, run.arch).step
    else:
        start_step = 0
        if run.checkpoint.is_file():
            run.checkpoint.unlink()
    t0 = time.perf_counter()
    if start_step >= s.train_steps:
        run.log(f"gd: reusing the checkpoint {run.checkpoint} (step {start_step}/{s.train_steps}); no training")
    else:
        run.log(f"gd: training {run.arch.heads} heads, width {run.arch.width}, G {run.arch.qk_dim} on "
                f"{len(e.gd_train.y)} episodes, steps {start_step} -> {s.train_steps}")
    res = tr.train(run.arch, e.gd_train.x, e.gd_train.y, s.train_config(), checkpoint=run.checkpoint,
                   resume=run.resume, progress=False)
    run.params = res.params
    train_seconds = time.perf_counter() - t0
    run.results["last_call"] = {"gd_steps_trained": s.train_steps - start_step, "skipped_stages": []}
    if run.done("gd"):
        run.results["last_call"]["skipped_stages"].append("gd")
        run.log(f"gd: stage already done (test accuracy {100 * run.results['gd']['test_accuracy']:.1f}%)")
        return
    p = run.params
    gd = {
        "test_accuracy": tr.accuracy(p, e.test.x, e.test.y),
        "validation_accuracy": tr.accuracy(p, e.validation.x, e.validation.y),
        "theory_train_accuracy": tr.accuracy(p, e.theory_train.x, e.theory_train.y),
        "gd_train_accuracy": tr.accuracy(p, e.gd_train.x, e.gd_train.y),
        "final_loss": float(np.mean(res.losses[-100:])),
        "losses_every_10": res.losses[::10],
        "train_seconds": train_seconds,
        "steps_trained": s.train_steps - start_step,
    }
    if e.ood is not None:
        gd["ood_accuracy"] = tr.accuracy(p, e.ood.x, e.ood.y)
    run.results["gd"] = gd
    run.log(f"gd: novel-class test accuracy {100 * gd['test_accuracy']:.1f}% (validation "
            f"{100 * gd['validation_accuracy']:.1f}%, training episodes {100 * gd['gd_train_accuracy']:.1f}%), "
            f"{train_seconds:.1f} s")
    run.finish("gd", time.perf_counter() - t0)


def _stage_theory(run: _Run):
    s = run.s
    f = run.features()
    y, yv, yt = run.eps.theory_train.y, run.eps.validation.y, run.eps.test.y
    theory = run.results.setdefault("theory", {"solutions": []})
    t_start = time.perf_counter()
    widths_desc = sorted((float(w) for w in s.widths), reverse=True)
    for T in (float(t) for t in s.temperatures):
        init, new = None, 0
        for N in widths_desc:
            row, U = run.row(N, T), run.U(N, T)
            if row is not None and (U is not None or not row["converged"]):
                init = U if U is not None else init
                continue
            spec = run.spec.with_width(N).replace(temperature=T)
            t0 = time.perf_counter()
            saddle, error = None, None
            for start in ([init, None] if init is not None else [None]):
                try:
                    saddle = ap.solve_saddle(spec, f["train"], y, init=start)
                    break
                except (RuntimeError, FloatingPointError) as err:
                    error = f"{type(err).__name__}: {err}"
            if saddle is None:
                row = {"N": N, "T": T, "converged": False, "action": None, "iterations": None, "grad_max": None,
                       "min_hessian_eigenvalue": None, "U_a": None, "validation_accuracy": None,
                       "test_accuracy": None, "test_gaussian_accuracy": None,
                       "seconds": time.perf_counter() - t0, "error": error}
                run.log(f"  theory N={N:g} T={T:g}: FAILED ({error})")
            else:
                row = _solution_row(N, T, saddle, spec, f["train"], y, f["validation"], yv, f["test"], yt,
                                    time.perf_counter() - t0)
                init = saddle.U
                for l, u in enumerate(saddle.U):
                    run.solutions[f"{_key(N, T)}_U{l + 1}"] = np.asarray(u)
            theory["solutions"] = [r for r in theory["solutions"] if not (r["N"] == N and r["T"] == T)] + [row]
            new += 1
        if new:
            theory["solutions"].sort(key=lambda r: (r["N"], r["T"]))
            _save_npz_atomic(run.npz_path, run.solutions)
            run.save()
            rows = [run.row(N, T) for N in sorted(widths_desc)]
            run.log(f"  theory T={T:g}: " + ", ".join(
                f"N={r['N']:g} {_pct(r['test_accuracy'])}"
                for r in rows) + f" ({sum(r['seconds'] for r in rows):.1f} s)")
    nsmall = float(min(s.widths))
    theory["smallest_width"] = nsmall
    theory["U_smallest_width"] = {f"{float(T):g}": (None if run.U(nsmall, T) is None else list(run.U(nsmall, T)))
                                  for T in s.temperatures}
    theory["n_failed"] = sum(not r["converged"] for r in theory["solutions"])
    run.finish("theory", time.perf_counter() - t_start)


def _best(rows, key, sign):
    """Row maximising sign * row[key] among converged rows; ties to the lower action (then the lower T)."""
    ok = [r for r in rows if r["converged"] and r[key] is not None]
    if not ok:
        return None
    return min(ok, key=lambda r: (-sign * r[key], r["action"], r["T"]))


def _stage_choices(run: _Run):
    t0 = time.perf_counter()
    s, f = run.s, run.features()
    y, yv, yt = run.eps.theory_train.y, run.eps.validation.y, run.eps.test.y
    per_width = []
    for N in sorted(float(w) for w in s.widths):
        rows = [run.row(N, T) for T in s.temperatures]
        rows = [r for r in rows if r is not None]
        val, ev, oracle = _best(rows, "validation_accuracy", +1), _best(rows, "action", -1), \
            _best(rows, "test_accuracy", +1)
        per_width.append({
            "N": N,
            "T_validation": None if val is None else val["T"],
            "validation_accuracy": None if val is None else val["validation_accuracy"],
            "test_accuracy_validation_T": None if val is None else val["test_accuracy"],
            "T_evidence": None if ev is None else ev["T"],
            "action_evidence": None if ev is None else ev["action"],
            "test_accuracy_evidence_T": None if ev is None else ev["test_accuracy"],
            "test_selected": None if oracle is None else {"T": oracle["T"], "test_accuracy": oracle["test_accuracy"]},
        })
    gp_rows = []
    for T in (float(t) for t in s.temperatures):
        spec = run.spec.replace(temperature=T)
        pv, pt = ap.predict(spec, f["train"], y, f["validation"]), ap.predict(spec, f["train"], y, f["test"])
        gp_rows.append({"T": T, "validation_accuracy": ap.accuracy(pv.mean, yv),
                        "test_accuracy": ap.accuracy(pt.mean, yt)})
    gp_best = max(gp_rows, key=lambda r: (r["validation_accuracy"], -r["T"]))
    run.results["choices"] = {"per_width": per_width,
                              "test_accuracy_binomial_se_max": math.sqrt(0.25 / len(yt)),
                              "rule": "validation: max validation accuracy (ties: lower action); evidence: "
                                      "min action S at the minimum; test_selected: the authors' rule (spec H.7), "
                                      "for reference only"}
    run.results["gp"] = {"per_temperature": gp_rows, "T_validation": gp_best["T"],
                         "validation_accuracy": gp_best["validation_accuracy"],
                         "test_accuracy": gp_best["test_accuracy"]}
    for r in per_width:
        va = r["test_accuracy_validation_T"]
        ea = r["test_accuracy_evidence_T"]
        run.log(f"  N={r['N']:g}: T_val={r['T_validation']} -> test "
                f"{_pct(va)}; T_evidence={r['T_evidence']} -> test {_pct(ea)}")
    run.log(f"  GP: T_val={gp_best['T']:g} -> test {100 * gp_best['test_accuracy']:.1f}%")
    run.finish("choices", time.perf_counter() - t0)


def _choice(run: _Run, N: float) -> dict:
    for r in run.results["choices"]["per_width"]:
        if r["N"] == float(N):
            return r
    raise KeyError(N)


def _stage_samples(run: _Run):
    from attnpaths._src.sampling.diagnostics import summarize
    from attnpaths._src.sampling.gibbs import BlockedGibbs, gibbs_draws

    t0 = time.perf_counter()
    s, f = run.s, run.features()
    y, yt = run.eps.theory_train.y, run.eps.test.y
    N = float(min(s.widths))
    T = _choice(run, N)["T_validation"]
    if T is None:
        run.results["samples"] = {"N": N, "error": "no converged theory solution at this width"}
        run.finish("samples", time.perf_counter() - t0)
        return
    spec = run.spec.with_width(N).replace(temperature=T)
    path = run.out / "samples" / f"gibbs_{_key(N, T)}.npz"
    if not run.resume and path.exists():
        path.unlink()
    sampler = BlockedGibbs.from_features(spec, f["train"], y)
    kw = {"n_chains": s.sample_chains, "n_warmup": s.sample_warmup, "seed": s.seed, "path": path,
          "resume": True, "progress": False}
    first = min(s.sample_first_draws, s.sample_draws)
    t_first = time.perf_counter()
    draws = gibbs_draws(sampler, f["test"], first, **kw)
    elapsed = time.perf_counter() - t_first
    n_draws = first
    if s.sample_draws > first:
        per_draw = max(draws.seconds, 1e-9) / (first + s.sample_warmup)  # sweeps, warm-up included
        left = s.sample_seconds - (time.perf_counter() - t0)
        n_draws = int(min(s.sample_draws, first + max(0.0, 0.9 * left / per_draw)))
        if n_draws > first:
            draws = gibbs_draws(sampler, f["test"], n_draws, **kw)
    elapsed = time.perf_counter() - t_first
    summary = summarize(draws)
    U1 = run.U(N, T)[0]
    theory_mean = ap.predict(spec, f["train"], y, f["test"], U1).mean
    norm = float(np.linalg.norm(theory_mean))
    row = run.row(N, T)
    run.results["samples"] = {
        "N": N, "T": T, "method": "blocked Gibbs", "n_chains": summary.n_chains, "n_draws": summary.n_draws,
        "n_warmup": s.sample_warmup, "time_box_seconds": s.sample_seconds,
        "accuracy": ap.accuracy(summary.mean, yt), "theory_accuracy": row["test_accuracy"],
        "relative_error_mean": float(np.linalg.norm(summary.mean - theory_mean) / norm),
        "monte_carlo_floor": float(np.sqrt(np.sum(summary.mean_se ** 2)) / norm),
        "relative_error_U": float(np.linalg.norm(summary.U - U1) / np.linalg.norm(U1)),
        "U": summary.U, "U_se": summary.U_se,
        "max_rhat": float(np.nanmax(summary.rhat_mean)), "min_ess": float(np.nanmin(summary.ess_mean)),
        "sampling_seconds": float(draws.seconds), "wall_seconds": elapsed,
    }
    r = run.results["samples"]
    run.log(f"samples N={N:g} T={T:g}: {r['n_chains']} chains x {r['n_draws']} draws, accuracy "
            f"{100 * r['accuracy']:.1f}% (theory {100 * r['theory_accuracy']:.1f}%), |mean - theory|/|theory| = "
            f"{r['relative_error_mean']:.3f} (Monte Carlo floor {r['monte_carlo_floor']:.3f}), max R-hat "
            f"{r['max_rhat']:.2f}, {elapsed:.0f} s")
    run.finish("samples", time.perf_counter() - t0)


def _stage_order(run: _Run):
    t0 = time.perf_counter()
    N = float(min(run.s.widths))
    T = _choice(run, N)["T_validation"]
    U_gd = tr.gd_order_parameter(run.params)
    scale = float(np.max(np.abs(U_gd)))
    sampled = run.results.get("samples", {}).get("U")
    run.results["order_parameters"] = {
        "N": N, "T": T, "labels": ap.path_labels(run.s.heads),
        "theory": None if T is None else run.U(N, T)[0], "sampled": sampled,
        "gd": U_gd / scale, "gd_scale": scale,
        "note": "gd = w_pi . w_pi' (w_pi = a^T V_2[h2] V_1[h1]) divided by its largest |entry| (gd_scale)",
    }
    run.finish("order", time.perf_counter() - t0)


def _stage_alignment(run: _Run):
    t0 = time.perf_counter()
    f, y = run.features(), run.eps.theory_train.y
    N = float(min(run.s.widths))
    T = _choice(run, N)["T_validation"]
    n_pcs = min(run.s.alignment_pcs, len(y))
    gp = ap.pc_alignment(np.asarray(ap.gp_kernel(run.spec, f["train"], f["train"])), y, n_pcs)
    out = {"N": N, "T": T, "n_pcs": n_pcs, "gp": gp.overlaps, "gp_eigenvalues": gp.eigenvalues}
    if T is not None:
        K = ap.renormalized_kernel(np.asarray(run.U(N, T)[0]), f["train"], f["train"], run.spec.variances[0])
        fw = ap.pc_alignment(np.asarray(K), y, n_pcs)
        out.update(finite_width=fw.overlaps, finite_width_eigenvalues=fw.eigenvalues)
        out["cumulative_overlap_sq_top10"] = {"finite_width": float(np.sum(fw.overlaps[:10] ** 2)),
                                              "gp": float(np.sum(gp.overlaps[:10] ** 2))}
    run.results["alignment"] = out
    run.finish("alignment", time.perf_counter() - t0)


def _stage_heads(run: _Run):
    t0 = time.perf_counter()
    s, e, p = run.s, run.eps, run.params
    heads = tuple(s.heads)
    N = float(min(s.widths))
    T = _choice(run, N)["T_validation"]
    if T is None:
        run.results["heads"] = {"error": "no converged theory solution at the smallest width"}
        run.finish("heads", time.perf_counter() - t0)
        return
    hs = ap.head_scores(run.U(N, T)[0], heads)
    base = tr.accuracy(p, e.test.x, e.test.y)
    single = tr.single_head_drop_accuracy(p, e.test.x, e.test.y)
    grad = tr.head_importance_gradient(p, e.theory_train.x, e.theory_train.y)
    layer, head = np.asarray(hs.layer), np.asarray(hs.head)
    acc_without = single[layer, head]
    drop = base - acc_without
    grad_sorted = grad[layer, head]
    order = list(zip(layer.tolist(), head.tolist()))
    rng = np.random.default_rng([s.seed, 7])
    random_orders = [[order[i] for i in rng.permutation(len(order))] for _ in range(s.random_orders)]
    curves = {"score_ascending": pruning_curve(p, e.test.x, e.test.y, order, heads),
              "score_descending": pruning_curve(p, e.test.x, e.test.y, order[::-1], heads)}
    random_curves = np.stack([pruning_curve(p, e.test.x, e.test.y, o, heads) for o in random_orders])
    label = lambda o: f"({o[0] + 1}){o[1] + 1}"
    run.results["heads"] = {
        "N": N, "T": T, "evaluated_on": "test", "base_accuracy": base,
        "order": [{"layer": int(l), "head": int(h), "label": label((l, h))} for l, h in order],
        "labels": hs.labels(), "score": hs.score, "accuracy_without": acc_without, "accuracy_drop": drop,
        "gradient_importance": grad_sorted,
        "single_head_accuracy_matrix": single, "gradient_importance_matrix": grad,
        "spearman_score_vs_drop": _spearman(hs.score, drop),
        "spearman_gradient_vs_drop": _spearman(grad_sorted, drop),
        "pruning": {
            "k": list(range(len(curves["score_ascending"]))),
            "score_ascending": curves["score_ascending"],
            "score_descending": curves["score_descending"],
            "orders": {"score_ascending": [label(o) for o in pruning_order(order, heads)],
                       "score_descending": [label(o) for o in pruning_order(order[::-1], heads)]},
            "random_mean": random_curves.mean(axis=0), "random_std": random_curves.std(axis=0, ddof=1),
            "random_curves": random_curves, "n_random": len(random_orders),
            "rule": "each layer's last head in the order is kept (moved to the end); L (H_l - 1) heads pruned",
        },
    }
    h = run.results["heads"]
    rs, rg = h["spearman_score_vs_drop"], h["spearman_gradient_vs_drop"]
    run.log(f"heads: accuracy drops {', '.join(f'{lab} {100 * d:.1f}' for lab, d in zip(h['labels'], drop))} "
            f"(points, ascending score); Spearman(score, drop) rho={_num(rs['rho'])} p={_num(rs['p_value'])}; "
            f"Spearman(gradient importance, drop) rho={_num(rg['rho'])} p={_num(rg['p_value'])}")
    run.finish("heads", time.perf_counter() - t0)


def _stage_ood(run: _Run):
    t0 = time.perf_counter()
    s, e, f = run.s, run.eps, run.features()
    y, yo = e.theory_train.y, e.ood.y
    per_width = []
    for N in sorted(float(w) for w in s.widths):
        T = _choice(run, N)["T_validation"]
        acc = None
        if T is not None:
            spec = run.spec.with_width(N).replace(temperature=T)
            acc = ap.accuracy(ap.predict(spec, f["train"], y, f["ood"], run.U(N, T)[0]).mean, yo)
        per_width.append({"N": N, "T": T, "accuracy": acc})
    Tg = run.results["gp"]["T_validation"]
    gp = ap.accuracy(ap.predict(run.spec.replace(temperature=Tg), f["train"], y, f["ood"]).mean, yo)
    run.results["ood"] = {"task": f"scikit-learn digits {OOD_DIGITS[0]} vs {OOD_DIGITS[1]} (spec E.1: MNIST 0/1)",
                          "n_episodes": len(yo), "gd_accuracy": tr.accuracy(run.params, e.ood.x, yo),
                          "theory": per_width, "gp_T": Tg, "gp_accuracy": gp}
    o = run.results["ood"]
    run.log(f"ood: GD {100 * o['gd_accuracy']:.1f}%, GP {100 * gp:.1f}%, theory " + ", ".join(
        f"N={r['N']:g} {_pct(r['accuracy'])}" for r in per_width))
    run.finish("ood", time.perf_counter() - t0)


def run_oneshot(data: str = "digits", data_dir=None, out="results/oneshot", resume: bool = False,
                quick: bool = False, log: Callable[[str], None] = print,
                settings: OneShotSettings | None = None) -> dict:
    """Reproduce Fig. 3 (and the OOD extra for Omniglot) end to end; see the module docstring.

    Args:
      data: 'digits' (scikit-learn digits, no download) or 'omniglot'.
      data_dir: the Omniglot folder (default `<workspace>/shared/data/omniglot` if it exists).
      out: output folder (results.json, checkpoint.npz, theory_solutions.npz, samples/, figures).
      resume: reuse what a previous call with the same inputs left in `out` (finished stages are skipped).
      quick: a small configuration for smoke tests (< 1 min).
      log: where progress lines go.
      settings: override every setting (default `oneshot_settings(data, quick)`).

    Returns:
      the results dictionary (also in OUT/results.json).

    Raises:
      FileNotFoundError: the Omniglot folder is missing (the message names it).
      ValueError: bad arguments, or `resume` with a results file made with other inputs.
    """
    from attnpaths.experiments.oneshot_plots import oneshot_figures

    t_start = time.perf_counter()
    settings = settings or oneshot_settings(data, quick)
    if settings.data != data:
        raise ValueError(f"settings.data = {settings.data!r} but data = {data!r}")
    out = Path(out)
    run = _Run(settings, data_dir, out, resume, log)
    e = run.eps
    log(f"oneshot {data}{' (quick)' if quick else ''}: episodes gd {len(e.gd_train.y)}, theory P="
        f"{len(e.theory_train.y)}, validation {len(e.validation.y)} ({len(e.classes['validation'])} classes), "
        f"test {len(e.test.y)} ({len(e.classes['test'])} novel classes); out {out}")
    out.mkdir(parents=True, exist_ok=True)
    run.save()
    _stage_gd(run)
    stages = [("theory", _stage_theory), ("choices", _stage_choices), ("samples", _stage_samples),
              ("order", _stage_order), ("alignment", _stage_alignment), ("heads", _stage_heads)]
    if e.ood is not None:
        stages.append(("ood", _stage_ood))
    for name, fn in stages:
        if run.done(name):
            run.results["last_call"]["skipped_stages"].append(name)
            log(f"{name}: already done, skipped")
            continue
        fn(run)
    t0 = time.perf_counter()
    files = oneshot_figures(run.results, out)
    run.results["figures"] = [p.name for p in files]
    run.results["timings"]["total_last_call"] = time.perf_counter() - t_start
    run.finish("figures", time.perf_counter() - t0)
    log(f"wrote {run.path} and {len(files)} figures; {run.results['timings']['total_last_call']:.1f} s")
    return run.results
