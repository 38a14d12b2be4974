# Every command the site shows, in one place. Pages include a section with
#   --8<-- "commands.sh:NAME"
# inside a ```bash fence. tests/test_docs.py checks that every `attnpaths ...` line here parses with the
# real command line (attnpaths.cli.build_parser) and that every `make` target exists, so a renamed option
# fails the suite instead of rotting on the site.

# --8<-- [start:markov]
attnpaths markov --preset 4paths --out results/markov          # Fig. 2c,d (what `make run` does)
attnpaths markov --preset 2paths --out results/markov-2paths   # Fig. 2e
# --8<-- [end:markov]

# --8<-- [start:markov-options]
attnpaths markov --widths 10 100 1000 --n-test 400 --out results/markov-small   # fewer widths, smaller test set
attnpaths markov --temperature 0.05 --out results/markov-T0.05                  # another temperature
# --8<-- [end:markov-options]

# --8<-- [start:markov-samples]
attnpaths markov --samples --sample-widths 10 100 --out results/markov          # theory + posterior samples
attnpaths markov --samples --sample-widths 10 100 --out results/markov --resume # continue interrupted samples
attnpaths sample results/markov --method gibbs --widths 10                      # sample a saved run
attnpaths sample results/markov --method nuts --widths 10 --n-samples 100 --n-chains 1   # NumPyro NUTS reference
# --8<-- [end:markov-samples]

# --8<-- [start:oneshot]
attnpaths oneshot --preset quick --out results/oneshot-quick                       # smoke test: Omniglot 8x8, about a minute
attnpaths oneshot --out results/oneshot                                            # the defaults: scikit-learn digits, no files needed
attnpaths oneshot --preset cpu --data-dir /path/to/omniglot --out results/oneshot-cpu            # Omniglot, the paper's input, small network
attnpaths oneshot --preset cpu --data-dir /path/to/omniglot --out results/oneshot-cpu --resume   # continue a killed run
attnpaths oneshot --preset paper --data-dir /path/to/omniglot --out results/oneshot-paper        # exactly the authors' Fig. 3 setup (GPU-sized)
attnpaths oneshot-study --preset cpu --data-dir /path/to/omniglot --seeds 0 1 2 3 4 --out results/oneshot-study   # the claim over seeds x draws
attnpaths oneshot-strength --preset strength --data-dir /path/to/omniglot --out results/oneshot-strength   # the claim against network strength
# --8<-- [end:oneshot]

# --8<-- [start:oneshot-results]
attnpaths oneshot --data omniglot --data-dir /path/to/omniglot --preset cpu --out results/oneshot-cpu   # the seed-0 tables
attnpaths oneshot-study --data-dir /path/to/omniglot --preset cpu --set widths=10,100,1000 --set temperatures=0.05,0.1,0.25,0.5,1,2 --set extra_temperatures=3,5,10 --out results/oneshot-study
# --8<-- [end:oneshot-results]

# --8<-- [start:oneshot-strong]
attnpaths oneshot --preset strong --data-dir /path/to/omniglot --out results/oneshot-strong   # one seed, every analysis (about 6 minutes)
attnpaths oneshot-study --preset strong --data-dir /path/to/omniglot --set analyses=samples,order --out results/study-strong   # 5 seeds x 3 draws, samples and Fig. 3c
# --8<-- [end:oneshot-strong]

# --8<-- [start:oneshot-strength]
attnpaths oneshot-strength --preset strength --data-dir /path/to/omniglot --out results/oneshot-strength   # 3 seeds x 6 checkpoints
attnpaths oneshot-strength --preset strong-strength --data-dir /path/to/omniglot --out results/strength-strong   # the same on the strong preset's network
.venv/bin/python benchmarks/oneshot_curves.py train cpu-cosine --root results/curves      # one learning curve (resumable)
.venv/bin/python benchmarks/oneshot_curves.py time --out results/curves/timing.json     # s/step of every configuration, one process
.venv/bin/python benchmarks/oneshot_curves.py report --root results/curves --timing results/curves/timing.json --figure docs/figures/oneshot_learning_curves.png
.venv/bin/python benchmarks/oneshot_curves.py train res8-w128-cosine-8k --root results/curves-lowres   # the strong preset's network
# --8<-- [end:oneshot-strength]

# --8<-- [start:install]
make run                                 # creates .venv, installs, runs the Fig. 2 experiment into results/markov
make test                                # installs the test extras and runs the whole suite (this site's build too)
make docs                                # this site, into site/ (mkdocs build --strict)
# --8<-- [end:install]

# --8<-- [start:validation]
.venv/bin/pytest -m slow                 # long validation runs that CI skips
.venv/bin/python benchmarks/solver.py    # Newton vs Adam on the same action
.venv/bin/python benchmarks/sampler.py   # blocked Gibbs vs NumPyro NUTS, effective samples per second
.venv/bin/python benchmarks/kernels.py   # P = 5000, 16 paths: kernel time and peak memory
.venv/bin/python benchmarks/scale.py     # the theory engine at scale, old vs new solver (the table on the scale page)
.venv/bin/python benchmarks/sweep.py     # attnpaths sweep on 1 vs 2 workers (the table on the sweeps page)
.venv/bin/python benchmarks/oneshot_training.py   # seconds per training step of each one-shot preset
.venv/bin/python tools/mutation.py report tools/mutation-results/current/*.jsonl   # mutation scores of the numerical core
# --8<-- [end:validation]

# --8<-- [start:scale]
.venv/bin/python benchmarks/scale.py                     # the full table, each cell in a fresh process (about an hour on 2 cores)
.venv/bin/python benchmarks/scale.py --quick             # P <= 10^4 and the special cases
.venv/bin/python benchmarks/scale.py --cells 100000x4 1000000x4   # chosen cells: P x paths
# --8<-- [end:scale]

# --8<-- [start:sweep-benchmark]
.venv/bin/python benchmarks/sweep.py     # 40 Markov cells at P = 1000 on 1 and 2 workers, pinned and unpinned
# --8<-- [end:sweep-benchmark]

# --8<-- [start:threads]
# one thread per worker process: set these before the worker imports JAX (in the shell that starts it)
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# --8<-- [end:threads]

# --8<-- [start:dask-cluster]
dask scheduler                                           # prints the address, e.g. tcp://10.0.0.5:8786
dask worker tcp://10.0.0.5:8786 --nworkers 1 --nthreads 1   # on every machine, once per core to use
# --8<-- [end:dask-cluster]

# --8<-- [start:pinned-workers]
# one single-threaded worker per core, each on its own core (Linux), with the thread variables above exported
for core in 0 1 2 3; do
  taskset -c "$core" dask worker tcp://10.0.0.5:8786 --nworkers 1 --nthreads 1 &
done
# --8<-- [end:pinned-workers]

# --8<-- [start:sweep]
attnpaths sweep grid.toml                                # LocalCluster, one worker process per core
attnpaths sweep grid.toml --resume                       # continue an interrupted sweep (stored cells are kept)
attnpaths sweep grid.toml --scheduler tcp://10.0.0.5:8786   # an existing Dask cluster
attnpaths sweep grid.toml --workers 2 --set axes.temperature=0.01,0.1 --out results/sweep-T
# --8<-- [end:sweep]

# --8<-- [start:studies]
attnpaths phase-map --out results/phase-map --workers 2         # Delta acc, Delta MSE over (alpha, T), both networks
attnpaths phase-map --preset quick --out results/phase-map-quick
attnpaths finite-size --out results/finite-size --workers 2     # theory vs Gibbs samples as N grows at fixed alpha
attnpaths finite-size --out results/finite-size --workers 2 --resume
# --8<-- [end:studies]

# --8<-- [start:finite-size-runs]
attnpaths finite-size --workers 2 --set time_budget=60 --set draws=3 --out results/finite-size   # the table
attnpaths finite-size --workers 2 --set alphas=2 --set widths=1000 --set time_budget=300 --set n_samples=60 --out results/finite-size-N1000   # its row alpha = 2, N = 1000
# --8<-- [end:finite-size-runs]

# --8<-- [start:results]
attnpaths sweep grid.toml --out results/sweep-markov    # the grid above, saved as grid.toml (20 cells: 30 s on one core)
# --8<-- [end:results]
