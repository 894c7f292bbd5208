"""Test setup: 8 fake CPU devices, so multi-device code is exercised on any machine."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402  (after the environment above)

# One persistent compilation cache for the whole test run, shared by the xdist workers: many tests compile
# the same small programs (the tiny config's chunks, their unrolled cost analyses); after the first, each is
# read back instead of compiled again. AMR_TEST_JAX_CACHE="" turns it off.
_CACHE = os.environ.get("AMR_TEST_JAX_CACHE", os.path.join(os.path.dirname(__file__), "..", ".pytest_cache", "jax"))
if _CACHE:
    jax.config.update("jax_compilation_cache_dir", os.path.abspath(_CACHE))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
