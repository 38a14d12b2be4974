"""Command line: `attnpaths markov`, `attnpaths sample`, `attnpaths oneshot`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _markov(args) -> int:
    import time

    from attnpaths.experiments.markov import run_markov
    from attnpaths.experiments.plots import markov_figures

    start = time.perf_counter()
    results = run_markov(args.preset, widths=args.widths, out=args.out, n_train=args.n_train,
                         n_test=args.n_test, temperature=args.temperature)
    if args.samples:
        from attnpaths.experiments.sampling import add_samples_to_markov

        results = add_samples_to_markov(results, args.out, n_samples=args.n_samples, n_chains=args.n_chains,
                                        sample_widths=args.sample_widths, seed=args.seed, resume=args.resume,
                                        n_warmup=args.n_warmup)
    files = markov_figures(results, args.out)
    print(f"wrote {Path(args.out) / 'results.json'} and " + ", ".join(str(f) for f in files))
    print(f"theory {results['seconds']:.1f} s, total {time.perf_counter() - start:.1f} s")
    return 0


def _sample(args) -> int:
    from attnpaths.experiments.sampling import sample_saved_run

    sample_saved_run(args.run, n_samples=args.n_samples, n_chains=args.n_chains, widths=args.widths,
                     seed=args.seed, resume=args.resume, method=args.method, n_warmup=args.n_warmup)
    return 0


def _oneshot(args) -> int:
    from attnpaths.experiments.oneshot import run_oneshot

    run_oneshot(data=args.data, data_dir=args.data_dir, out=args.out, resume=args.resume, quick=args.quick)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attnpaths", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    m = sub.add_parser("markov", help="hidden Markov chain experiment (Fig. 2): theory, GP, optional samples")
    m.add_argument("--preset", choices=["4paths", "2paths"], default="4paths")
    m.add_argument("--widths", type=float, nargs="+", default=None, help="default 10 30 50 100 300 500 1000")
    m.add_argument("--out", default="results/markov")
    m.add_argument("--n-train", type=int, default=None)
    m.add_argument("--n-test", type=int, default=None)
    m.add_argument("--temperature", type=float, default=None)
    m.add_argument("--samples", action="store_true", help="also sample the network's posterior (Gibbs)")
    m.add_argument("--sample-widths", type=float, nargs="+", default=None)
    m.add_argument("--n-samples", type=int, default=400)
    m.add_argument("--n-chains", type=int, default=4)
    m.add_argument("--n-warmup", type=int, default=100)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--resume", action="store_true", help="continue interrupted sample files in OUT/samples")
    m.set_defaults(func=_markov)

    s = sub.add_parser("sample", help="sample the posterior of a saved markov run (results.json folder)")
    s.add_argument("run", help="folder holding results.json")
    s.add_argument("--widths", type=float, nargs="+", default=None)
    s.add_argument("--n-samples", type=int, default=400)
    s.add_argument("--n-chains", type=int, default=4)
    s.add_argument("--n-warmup", type=int, default=100)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--method", choices=["gibbs", "nuts"], default="gibbs")
    s.add_argument("--resume", action="store_true")
    s.set_defaults(func=_sample)

    o = sub.add_parser("oneshot", help="one-shot image classification experiment (Fig. 3)")
    o.add_argument("--data", choices=["digits", "omniglot"], default="digits")
    o.add_argument("--data-dir", default=None)
    o.add_argument("--out", default="results/oneshot")
    o.add_argument("--resume", action="store_true")
    o.add_argument("--quick", action="store_true", help="a small, fast configuration (for smoke tests)")
    o.set_defaults(func=_oneshot)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"attnpaths {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
