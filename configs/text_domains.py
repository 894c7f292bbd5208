"""Byte-level LM continual pre-training over the four text domains of the fixed corpus (amr/data/corpus)
with a 2-layer width-128 model: the quickstart's setting with 4x the model FLOPs
(about 15 minutes for three strategies and three seeds on 2 CPU cores)."""

from configs.base import get_base_config


def get_config():
    c = get_base_config("byte_lm", "python_text")  # model: the "tiny" preset, 2 layers of width 128
    c.seeds = (0, 1, 2)  # seeds run one after another
    c.data.domains = ("docs", "stdlib", "headers", "licenses")  # task order
    c.data.max_train_per_task = 4096  # 128-byte windows per task (512 KiB)
    c.data.test_per_task = 256  # held-out windows per task
    c.train.steps_per_task = 160  # optimizer steps per task
    c.train.batch_size = 32  # rows per step (2 of them replay)
    return c
