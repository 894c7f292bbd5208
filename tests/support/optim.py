"""The small optimizer config the chunk-level tests share."""

import ml_collections


def optim_config() -> ml_collections.ConfigDict:
    """AdamW at 3e-3, constant after one warmup step, clipped at 1.0 (the chunk tests' optimizer)."""
    return ml_collections.ConfigDict(
        dict(
            name="adamw",
            learning_rate=3e-3,
            warmup_steps=1,
            schedule="constant",
            min_lr_ratio=0.1,
            b1=0.9,
            b2=0.99,
            weight_decay=0.0,
            grad_clip=1.0,
        )
    )
