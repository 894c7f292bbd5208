"""The embedded default: byte-level LM continual pre-training over the 4 text domains of the fixed
corpus in amr/data/corpus (docs prose -> stdlib source -> C headers -> package licenses).

Small replay fraction (2 of 32 rows) and long enough tasks that uniform replay still
forgets: the regime where choosing what to replay matters. About 10 minutes on 2 CPU cores.
"""

from configs.base import get_base_config


def get_config():
    c = get_base_config("byte_lm", "python_text")
    c.seeds = (0, 1, 2)  # three seeds: the seed-to-seed spread is part of the result
    c.model.width, c.model.heads, c.model.mlp_dim = 64, 4, 256  # 2 layers: ~0.1M parameters, CPU-sized
    c.replay.embed_dim_hint = c.model.width
    c.data.max_train_per_task = 4096  # windows of 128 bytes per task (512 KiB)
    c.data.test_per_task = 256  # held-out windows per task
    c.train.steps_per_task = 160
    c.train.batch_size = 32
    return c
