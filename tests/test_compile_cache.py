"""amr/runner/compile_cache.py: the trainer's and the sweep's persistent XLA compilation cache.

Each case runs in a fresh interpreter: the suite's own cache (tests/conftest.py) is already set in this one."""

import json
import os
import subprocess
import sys

from amr.runner import compile_cache

_SCRIPT = r"""
import json, os, sys
import jax, jax.numpy as jnp
from amr.runner import compile_cache

used = compile_cache.enable(sys.argv[1])

def loss(w, x):
    for _ in range(4):
        x = jnp.tanh(x @ w)
    return (x ** 2).mean()

w, x = jnp.full((16, 16), 0.1), jnp.ones((8, 16))
out = []
for _ in range(2):  # the second compile is read back from the cache (in-memory caches cleared)
    jax.clear_caches()
    compiled = jax.jit(jax.grad(loss)).lower(w, x).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    out.append({"flops": cost["flops"], "grad": jax.device_get(compiled(w, x)).tolist()})
print(json.dumps({"used": used, "env": os.environ.get(compile_cache.ENV), "runs": out}))
"""


def _run(directory, env_cache=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    if env_cache:
        env[compile_cache.ENV] = env_cache
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, directory], env=env, capture_output=True, text=True, timeout=300, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_resolve_names_the_workdir_cache_or_none():
    assert compile_cache.resolve("auto", "runs/q") == os.path.join("runs/q", "compile_cache")
    assert compile_cache.resolve("", "runs/q") == ""
    assert compile_cache.resolve("/tmp/c", "runs/q") == "/tmp/c"


def test_enable_caches_programs_whose_reads_give_the_same_executable(tmp_path):
    cache = tmp_path / "cc"
    got = _run(str(cache))
    assert got["used"] == got["env"] == str(cache)  # exported for the sweep's worker processes
    assert any(cache.iterdir())  # programs were written
    first, second = got["runs"]
    assert first == second  # the cost analysis and the outputs of the cached executable are the compiled one's


def test_a_users_cache_wins_and_empty_leaves_jax_alone(tmp_path):
    mine = tmp_path / "mine"
    got = _run(str(tmp_path / "ours"), env_cache=str(mine))
    assert got["used"] == str(mine) and not (tmp_path / "ours").exists()
    off = _run("")  # negative control: nothing configured, nothing written
    assert off["used"] is None and off["env"] is None
