"""Byte-level LM continual pre-training over the four text domains of the Python installation,
with a larger model and longer tasks than the quickstart (about an hour per seed on 2 CPU cores)."""

from configs.base import get_base_config


def get_config():
    c = get_base_config("byte_lm", "python_text")
    c.seeds = (0, 1, 2)  # seeds run one after another
    c.data.domains = ("docs", "stdlib", "headers", "licenses")  # task order
    c.data.max_train_per_task = 8192  # 128-byte windows per task (1 MiB)
    c.data.test_per_task = 512  # held-out windows per task
    c.train.steps_per_task = 400  # optimizer steps per task
    c.train.batch_size = 32  # rows per step (2 of them replay)
    c.train.eval_every = 80  # held-out curve points per task
    return c
