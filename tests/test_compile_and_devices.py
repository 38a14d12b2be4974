"""Compile once (persistent cache across processes) and the same statistics on 1 or 4 devices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import attnpaths as ap

SOLVE = textwrap.dedent("""
    import json, sys
    import numpy as np, attnpaths as ap
    folder = ap.set_compile_cache(sys.argv[1])
    rng = np.random.default_rng(0)
    spec = ap.NetworkSpec(heads=(2, 2), widths=5.0, temperature=0.1)
    heads = [ap.QKHeads(rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 3, 4))) for _ in range(2)]
    x, y = rng.normal(size=(30, 4, 5)), np.sign(rng.normal(size=30))
    stats = ap.gram_statistics(spec, heads, x, y, chunk_size=8)
    saddle = ap.solve_saddle(spec, stats)
    print(json.dumps({"folder": str(folder), "action": saddle.action}))
""")


def _run(code: str, *args, env=None) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600,
                         env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_process_compiles_nothing(tmp_path):
    cache = tmp_path / "cache"
    first = _run(SOLVE, str(cache))
    entries = sorted(os.listdir(cache))
    assert first["folder"] == str(cache) and len(entries) >= 3  # the theory's executables were written
    second = _run(SOLVE, str(cache))
    assert sorted(os.listdir(cache)) == entries  # every executable came from the cache
    assert second["action"] == first["action"]


def test_unwritable_cache_folder_warns_and_runs_uncached(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    try:
        with pytest.warns(RuntimeWarning, match="cannot be written .* running without a persistent"):
            assert ap.set_compile_cache(blocker / "cache") is None
        assert ap.set_compile_cache(None) is None
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ap.set_compile_cache("default")


DEVICES = textwrap.dedent("""
    import json
    import jax, numpy as np, attnpaths as ap
    from attnpaths._src import statistics
    used, accumulate = set(), statistics._accumulate
    def spy(gram, xty, yty, xi, y):
        used.update(str(d) for d in xi.devices())
        return accumulate(gram, xty, yty, xi, y)
    statistics._accumulate = spy
    rng = np.random.default_rng(3)
    spec = ap.NetworkSpec(heads=(2, 3), widths=4.0, temperature=0.05)
    heads = [ap.QKHeads(rng.normal(size=(h, 3, 5)), rng.normal(size=(h, 3, 5))) for h in spec.heads]
    x, y = rng.normal(size=(203, 5, 6)), np.sign(rng.normal(size=203))
    out = {"n_devices": len(jax.local_devices())}
    for name, devices in (("one", jax.local_devices()[:1]), ("all", None)):
        used.clear()
        stats = ap.gram_statistics(spec, heads, x, y, chunk_size=16, devices=devices)
        out[name] = {"gram": np.asarray(stats.gram).tolist(), "xty": np.asarray(stats.xty).tolist(),
                     "action": ap.solve_saddle(spec, stats).action,
                     "devices": len(used)}
    print(json.dumps(out))
""")


def test_statistics_sharded_over_four_devices_equal_one_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    out = _run(DEVICES, env=env)
    assert out["n_devices"] == 4 and out["one"]["devices"] == 1 and out["all"]["devices"] == 4
    for key in ("gram", "xty"):
        a, b = np.asarray(out["one"][key]), np.asarray(out["all"][key])
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14 * np.abs(a).max())
    assert out["all"]["action"] == pytest.approx(out["one"]["action"], rel=1e-12)
