"""Models behind one interface: `make_model(config) -> ModelSpec` of pure functions.

    spec = make_model(default_model_config("byte_lm"))
    params = spec.init(jax.random.key(0))          # float32 PyTree (jitted: one compile)
    loss_B = spec.loss(params, batch, key)         # float32[B], rows independent
    emb_BxD = spec.embed(params, batch)            # float32[B, width]
    out = spec.outputs(params, batch, key)         # ModelOutputs: loss, logits/reconstructions, hidden
                                                   # states, linear layers' output magnitudes, pooling
    loss_B, emb_BxD = spec.loss_and_embed(params, batch, key)  # loss plus the same pass's pooling
    emb_BxD = spec.train_embed(params, batch, key)  # that pooling alone (no head / decoder)

`outputs` and `loss_and_embed` are the same forward pass (each model's `forward`, `amr.models.outputs`);
`loss` stays its own plain pass (what a run without methods or free embeddings trains on).

Two models: "byte_lm" (byte-level causal decoder, batch int32[B, L]) and "vit_mae"
(masked autoencoder, batch float32[B, H, W, C] in [0, 1]). Size is config only:
`default_model_config(name, "tiny")` runs on a laptop CPU, `"base"` is TPU-sized
(bfloat16 compute, remat).
"""

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections

from amr.models.byte_lm import make_byte_lm
from amr.models.vit_mae import make_vit_mae

__all__ = ["ModelSpec", "make_model", "default_model_config", "count_params", "validate_model_config", "MODEL_NAMES"]

MODEL_NAMES = ("byte_lm", "vit_mae")
DTYPES = ("float32", "bfloat16")

_COMMON = ("name", "width", "depth", "heads", "mlp_dim", "dtype", "remat")
_KEYS = {
    "byte_lm": _COMMON + ("seq_len",),
    "vit_mae": _COMMON
    + (
        "image_size",
        "channels",
        "patch_size",
        "mask_ratio",
        "decoder_width",
        "decoder_depth",
        "decoder_heads",
        "norm_pix_loss",
    ),
}
_ALL_KEYS = frozenset(k for keys in _KEYS.values() for k in keys)


class ModelSpec(NamedTuple):
    init: Callable  # init(key) -> params PyTree (float32); jitted, bit-identical to the eager init
    loss: Callable  # loss(params, batch, key) -> float32[B] per-example loss
    embed: Callable  # embed(params, batch) -> float32[B, width]
    example_shape: tuple  # shape of one example: (seq_len,) or (H, W, C)
    example_dtype: Any  # jnp.int32 or jnp.float32
    module: Any  # the flax linen module
    outputs: Callable | None = None  # outputs(params, batch, key) -> amr.models.outputs.ModelOutputs
    output_kind: str = ""  # what ModelOutputs.out holds: "logits" (byte_lm) | "reconstruction" (vit_mae)
    # loss_and_embed(params, batch, key) -> (loss float32[B], float32[B, width]): `loss` (the same value) plus
    # the pooled representation its forward pass computes (byte_lm: mean final hidden state over the L-1
    # input bytes; vit_mae: mean encoder output over the visible patches) -- replay.embeddings="free"
    loss_and_embed: Callable | None = None
    train_embed: Callable | None = None  # train_embed(params, batch, key) -> loss_and_embed's embedding alone


_PRESETS = {
    ("byte_lm", "tiny"): dict(width=128, depth=2, heads=4, mlp_dim=512, seq_len=128, dtype="float32", remat=False),
    # ~300M parameters, GPT-2-medium shaped.
    ("byte_lm", "base"): dict(width=1024, depth=24, heads=16, mlp_dim=4096, seq_len=2048, dtype="bfloat16", remat=True),
    ("vit_mae", "tiny"): dict(
        width=128,
        depth=2,
        heads=4,
        mlp_dim=512,
        image_size=32,
        channels=3,
        patch_size=4,
        mask_ratio=0.75,
        decoder_width=64,
        decoder_depth=1,
        decoder_heads=4,
        norm_pix_loss=True,
        dtype="float32",
        remat=False,
    ),
    # MAE ViT-B/16 with the paper's 512-wide, 8-deep decoder (~112M parameters).
    ("vit_mae", "base"): dict(
        width=768,
        depth=12,
        heads=12,
        mlp_dim=3072,
        image_size=224,
        channels=3,
        patch_size=16,
        mask_ratio=0.75,
        decoder_width=512,
        decoder_depth=8,
        decoder_heads=16,
        norm_pix_loss=True,
        dtype="bfloat16",
        remat=True,
    ),
}


def default_model_config(name: str, size: str = "tiny") -> ml_collections.ConfigDict:
    """Default `model` config; size "tiny" (CPU) or "base" (TPU-sized)."""
    if name not in MODEL_NAMES:
        raise ValueError(f"name: unknown model {name!r}; expected one of {MODEL_NAMES}")
    if (name, size) not in _PRESETS:
        raise ValueError(f"size: unknown size {size!r}; expected 'tiny' or 'base'")
    return ml_collections.ConfigDict(dict(name=name, **_PRESETS[(name, size)]))


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate_model_config(cfg) -> None:
    """Raises ValueError naming the first bad `model.<key>`."""
    name = cfg.get("name")
    if name not in MODEL_NAMES:
        raise ValueError(f"model.name: unknown model {name!r}; expected one of {MODEL_NAMES}")
    for key in cfg.keys():
        if key not in _ALL_KEYS:
            raise ValueError(f"model.{key}: unknown key for a model config")
    for key in _KEYS[name]:
        if key not in cfg:
            raise ValueError(f"model.{key}: missing (start from default_model_config({name!r}))")

    positive = ["width", "depth", "heads", "mlp_dim"]
    if name == "byte_lm":
        positive += ["seq_len"]
    else:
        positive += ["image_size", "channels", "patch_size", "decoder_width", "decoder_depth", "decoder_heads"]
    for key in positive:
        if not _is_int(cfg[key]) or cfg[key] < 1:
            raise ValueError(f"model.{key} must be a positive int, got {cfg[key]!r}")
    if cfg.width % cfg.heads:
        raise ValueError(f"model.heads must divide model.width ({cfg.heads} does not divide {cfg.width})")
    if cfg.dtype not in DTYPES:
        raise ValueError(f"model.dtype must be one of {DTYPES}, got {cfg.dtype!r}")
    if not isinstance(cfg.remat, bool):
        raise ValueError(f"model.remat must be a bool, got {cfg.remat!r}")

    if name == "byte_lm":
        if cfg.seq_len < 2:
            raise ValueError(
                f"model.seq_len must be >= 2 (one byte is predicted from the previous ones), got {cfg.seq_len}"
            )
        return
    if cfg.image_size % cfg.patch_size:
        raise ValueError(
            f"model.patch_size must divide model.image_size ({cfg.patch_size} does not divide {cfg.image_size})"
        )
    if cfg.decoder_width % cfg.decoder_heads:
        raise ValueError(
            f"model.decoder_heads must divide model.decoder_width "
            f"({cfg.decoder_heads} does not divide {cfg.decoder_width})"
        )
    ratio = cfg.mask_ratio
    if (
        isinstance(ratio, bool)
        or not isinstance(ratio, (int, float))
        or not math.isfinite(ratio)
        or not 0.0 <= ratio < 1.0
    ):
        raise ValueError(f"model.mask_ratio must be in [0, 1), got {ratio!r}")
    if not isinstance(cfg.norm_pix_loss, bool):
        raise ValueError(f"model.norm_pix_loss must be a bool, got {cfg.norm_pix_loss!r}")


def make_model(model_config: ml_collections.ConfigDict) -> ModelSpec:
    """Validates `model_config` and binds it into a ModelSpec of pure functions."""
    cfg = ml_collections.FrozenConfigDict(model_config)  # later edits can't leak in
    validate_model_config(cfg)
    # init is jitted: one program instead of one per initializer op (eagerly ~1,100 small compiles).
    if cfg.name == "byte_lm":
        module, init, loss, embed, outputs, loss_and_embed, train_embed = make_byte_lm(cfg)
        example_shape, example_dtype, output_kind = (cfg.seq_len,), jnp.int32, "logits"
    else:
        module, init, loss, embed, outputs, loss_and_embed, train_embed = make_vit_mae(cfg)
        example_shape = (cfg.image_size, cfg.image_size, cfg.channels)
        example_dtype, output_kind = jnp.float32, "reconstruction"
    return ModelSpec(
        jax.jit(init),
        loss,
        embed,
        example_shape,
        example_dtype,
        module,
        outputs=outputs,
        output_kind=output_kind,
        loss_and_embed=loss_and_embed,
        train_embed=train_embed,
    )


def count_params(params) -> int:
    """Number of scalars in a params PyTree (arrays or jax.ShapeDtypeStruct)."""
    return sum(math.prod(x.shape) for x in jax.tree.leaves(params))
