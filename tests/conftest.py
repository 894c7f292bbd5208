"""Test setup: 8 fake CPU devices, so multi-device code is exercised on any machine."""

import os

# XLA's backend optimisation level 0: the tests compile hundreds of small programs once each, and on a fresh clone
# (an empty compilation cache) LLVM's optimisation passes were most of the fast tier's time (19 minutes on 2 cores
# against about 10 at level 0). Tests check values, never speed (benchmarks do that, at the default level).
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402  (after the environment above)
import pytest  # noqa: E402

# One persistent compilation cache for the whole test run, shared by the xdist workers: many tests compile
# the same small programs (the tiny config's chunks, their unrolled cost analyses); after the first, each is
# read back instead of compiled again. AMR_TEST_JAX_CACHE="" turns it off.
_CACHE = os.environ.get("AMR_TEST_JAX_CACHE", os.path.join(os.path.dirname(__file__), "..", ".pytest_cache", "jax"))
if _CACHE:
    jax.config.update("jax_compilation_cache_dir", os.path.abspath(_CACHE))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


# The tiny models of the output-method tests (test_output_methods.py, test_output_methods_math.py). A test
# file's own `model` fixture (test_methods.py, test_models.py, ...) takes precedence over this one.
@pytest.fixture(scope="module")
def model():
    from amr.models import default_model_config, make_model

    cfg = default_model_config("byte_lm")
    cfg.width, cfg.depth, cfg.heads, cfg.mlp_dim, cfg.seq_len = 16, 1, 2, 32, 8
    return make_model(cfg)


@pytest.fixture(scope="module")
def mae():
    from amr.models import default_model_config, make_model

    cfg = default_model_config("vit_mae")
    cfg.update(width=16, depth=1, heads=2, mlp_dim=32, image_size=8, channels=1, patch_size=4)
    cfg.update(decoder_width=16, decoder_depth=1, decoder_heads=2)
    return make_model(cfg)
