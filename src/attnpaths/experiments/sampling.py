"""Posterior samples of the real network next to the theory (spec C.2; black dots of Fig. 2c / 3b), for every
experiment.

`draw_posterior` is the one place where the experiments call a sampler (registered by name in `SAMPLERS`), and
`compare_with_theory` turns the draws into the row the results files store: the sampled accuracy, the sampled
order parameter U_1 with its standard error, the relative error of the sampled predictor mean against the
theory's, ||mean_sampled - mean_theory|| / ||mean_theory||, next to its Monte Carlo floor
sqrt(sum se^2) / ||mean_theory||, and the worst split R-hat / smallest ESS over the test predictions.

`attnpaths sample RUN` (`sample_saved_run`) adds samples to any saved run: it reads the run's experiment from
RUN/run.npz and calls that experiment's `add_samples` (a stage on the run's `Runner`; results.json is rebuilt
from the stage records), then redraws the figures with the experiment's `figures`. A run that holds no posterior
of one network (a sweep, a phase map, a finite-size study) is registered in `NO_POSTERIOR` by its command, with
what to do instead, which `sample` says.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attnpaths._src.predictor import accuracy, predict
from attnpaths._src.registry import Registry
from attnpaths._src.sampling.api import sample_from_features
from attnpaths._src.sampling.diagnostics import convergence_warning, summarize
from attnpaths._src.sampling.draws import PosteriorDraws
from attnpaths._src.sampling.protocol import SAMPLERS
from attnpaths.experiments.settings import Settings, at_least, each, positive, setting


@dataclass(frozen=True)
class NoPosterior:
    """Why `attnpaths sample` cannot sample a kind of run, in the command line's words: the folder `holds` this
    (e.g. "a sweep (`attnpaths sweep`), which has no posterior to sample"), and what to do `instead`."""

    holds: str
    instead: str


# the run's experiment name (as its run.npz stores it) -> why it has no posterior to sample
NO_POSTERIOR: Registry[NoPosterior] = Registry("run without a posterior to sample")


def draw_posterior(method: str, spec, xi, y, xi_test, *, n_draws: int, n_chains: int, n_warmup: int, seed: int,
                   path: Path | None, resume: bool, progress: bool = True) -> PosteriorDraws:
    """Posterior draws of the network (spec at its width) with the sampler registered as `method` (`SAMPLERS`,
    the library's registry: `attnpaths.register_sampler` adds one), through the shared driver.

    path: the draws file (streamed as the sampler goes, resumable); None keeps the draws in memory.
    """
    return sample_from_features(spec, xi, y, xi_test, method=method, n_draws=n_draws, n_chains=n_chains,
                                n_warmup=n_warmup, seed=seed, path=path, resume=resume,
                                save_every=max(1, n_draws // 20), progress=progress)


def compare_with_theory(draws: PosteriorDraws, spec, xi, y, xi_test, y_test, U1, method: str) -> dict:
    """The results row of a sampled width: sampled vs theory predictor and order parameter (module docstring)."""
    summary = summarize(draws)
    U1 = np.asarray(U1)
    theory = predict(spec, xi, y, xi_test, U1)
    norm = float(np.linalg.norm(theory.mean))
    return {
        "N": float(spec.widths[0]), "T": float(spec.temperature), "method": method,
        "n_chains": summary.n_chains, "n_draws": summary.n_draws,
        "accuracy": accuracy(summary.mean, y_test), "theory_accuracy": accuracy(theory.mean, y_test),
        "relative_error_mean": float(np.linalg.norm(summary.mean - theory.mean) / norm),
        "monte_carlo_floor": float(np.sqrt(np.sum(summary.mean_se ** 2)) / norm),
        "relative_error_U": float(np.linalg.norm(summary.U - U1) / np.linalg.norm(U1)),
        "U": summary.U, "U_se": summary.U_se,
        "max_rhat": float(np.nanmax(summary.rhat_mean)), "min_ess": float(np.nanmin(summary.ess_mean)),
        "median_iat_sweeps": float(np.nanmedian(summary.iat_mean)),
        "seconds": float(draws.seconds),
        "effective_samples_per_second": float(np.nanmedian(summary.ess_mean) / max(draws.seconds, 1e-12)),
    }


def draws_file(out, method: str, N: float, T: float | None = None) -> Path | None:
    """OUT/samples/<method>_N<N>[_T<T>].npz for samplers that store their draws (gibbs), else None."""
    if method != "gibbs":
        return None
    suffix = "" if T is None else f"_T{float(T):g}"
    return Path(out) / "samples" / f"{method}_N{float(N):g}{suffix}.npz"


def format_row(row: dict) -> str:
    """The printed line of a sampled width, followed by a warning line when its R-hat or ESS fails."""
    line = (f"  samples N={row['N']:g} ({row['method']}, {row['n_chains']}x{row['n_draws']}): accuracy "
            f"{100 * row['accuracy']:.1f}% (theory {100 * row['theory_accuracy']:.1f}%), |mean - theory|/|theory| "
            f"= {row['relative_error_mean']:.3f} (Monte Carlo floor {row['monte_carlo_floor']:.3f}), max R-hat "
            f"{row['max_rhat']:.3f}, min ESS {row['min_ess']:.0f}, {row['seconds']:.1f} s")
    return "\n".join(filter(None, (line, convergence_warning(row["max_rhat"], row["min_ess"]))))


@dataclass(frozen=True)
class SampleSettings(Settings):
    """Settings of `attnpaths sample RUN` (posterior samples added to a saved run)."""

    widths: tuple[float, ...] | None = setting(None, "widths N to sample (each needs a theory solution in the "
                                               "run); none: the experiment's default (Markov: 10 and 100, "
                                               "one-shot: the smallest width)", check=each(positive))
    n_samples: int = setting(400, "draws per chain kept after the warm-up", check=at_least(4))
    n_chains: int = setting(4, "independent chains", check=at_least(1))
    n_warmup: int = setting(100, "sweeps discarded before the first draw (fixed, so that a resumed run may ask "
                            "for more draws)", check=at_least(0))
    seed: int = setting(0, "seed of the chains", check=at_least(0))
    method: str = setting("gibbs", "sampler: blocked Gibbs (exact conditionals, stored and resumable) or NumPyro "
                          "NUTS (the reference)", choices=SAMPLERS)


def sample_saved_run(run, settings: SampleSettings | None = None, resume: bool = True, log=print,
                     given=None) -> dict:
    """`attnpaths sample RUN`: add posterior samples to the saved run in folder `run` (any experiment) and
    redraw its figures. Returns the run's updated results.

    settings: the sampling settings; None: the run's own (the experiment's `sample_settings` of the run's settings).
    given: names of the fields of `settings` to use; the others are the run's own. None: all of them.
    resume: continue the draws already in the run (a second `attnpaths sample` adds to the first); False refuses
      a run that holds draws of these settings.
    """
    from attnpaths.experiments.base import EXPERIMENTS
    from attnpaths.experiments.runner import load_run_header

    run = Path(run)
    path = run / "run.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{run} holds no saved attnpaths run (no run.npz); give the --out folder of a run")
    name = load_run_header(run)["experiment"]
    if name in NO_POSTERIOR:
        why = NO_POSTERIOR[name]
        raise ValueError(f"{run} holds {why.holds}; {why.instead}")
    experiment = EXPERIMENTS[name]
    if experiment.add_samples is None:
        raise ValueError(f"the {name} experiment has no posterior samples")
    own = SampleSettings()
    if experiment.sample_settings is not None:
        header = load_run_header(run)
        own = experiment.sample_settings(experiment.settings().updated(header["all_settings"], str(path)))
    if settings is not None:
        fields = [f.name for f in SampleSettings.fields()] if given is None else list(given)
        own = own.updated({k: getattr(settings, k) for k in fields})
    results = experiment.add_samples(run, own, resume, log)
    if experiment.figures is not None:
        experiment.figures(results, run)
    return results
