"""A persistent XLA compilation cache for the trainer and the sweep.

Every seed of a strategy compiles the same programs (the chunk, the held-out passes and the measured ledger's
probes, which compile the chunk's parts to read their cost analysis), and so does every run of a sweep that
shares a config. Compiling dominated a run on this 2-core CPU machine (a text run spent 131 of 220 s in XLA's
compiler, the ledger's probes most of it). With the cache, a program is compiled once per workdir and read
back by the next run and by the sweep's other workers (processes share it through the environment).

A cached executable is the one compiled from the same HLO with the same options on the same backend, so results
and the ledger's cost analysis are the same with or without it (tests/test_compile_cache.py).

    enable("runs/quickstart/compile_cache")   # or "" to leave JAX's setting alone
"""

from __future__ import annotations

import os

import jax

ENV = "JAX_COMPILATION_CACHE_DIR"  # JAX reads it at import; worker subprocesses inherit it
MIN_SECONDS_ENV = "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"
SUBDIR = "compile_cache"  # the default cache under a run's or sweep's workdir
AUTO = "auto"


def resolve(flag: str, workdir: str) -> str:
    """The cache directory a `--compile_cache` flag names: `auto` -> <workdir>/compile_cache, `''` -> off."""
    if flag == AUTO:
        return os.path.join(workdir, SUBDIR)
    return flag


def enable(directory: str) -> str | None:
    """Points JAX's persistent compilation cache at `directory` for this process and its children.

    A cache the user configured already (the JAX_COMPILATION_CACHE_DIR environment variable or
    `jax_compilation_cache_dir`) wins: it is returned unchanged. `''` leaves the setting alone and returns
    what is in use (None: no cache). Every program is cached, however fast it compiled."""
    current = jax.config.jax_compilation_cache_dir or os.environ.get(ENV) or None
    if current or not directory:
        return current
    directory = os.path.abspath(directory)  # JAX creates it at the first compile: nothing is written before
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    os.environ[ENV] = directory  # the sweep's worker processes read the same cache
    os.environ[MIN_SECONDS_ENV] = "0"
    return directory
