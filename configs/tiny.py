"""A seconds-long config for tests and notebooks in CI: same code paths, tiny sizes."""

from configs.base import get_base_config


def get_config():
    c = get_base_config("byte_lm", "python_text")
    c.model.width, c.model.depth, c.model.heads, c.model.mlp_dim, c.model.seq_len = 32, 1, 2, 64, 32
    c.replay.embed_dim_hint = c.model.width
    c.data.seq_len = 32
    c.data.domains = ("docs", "headers", "licenses")
    c.data.max_train_per_task = 256
    c.data.test_per_task = 32
    c.train.steps_per_task = 16
    c.train.batch_size = 16
    c.train.chunk_size = 4
    c.train.eval_every = 8
    c.train.eval_batch = 32
    c.train.checkpoint_every = 2
    c.optim.warmup_steps = 2
    c.replay.fraction = 0.125  # 2 of 16 rows
    c.replay.ref_samples = 16
    c.mesh.num_devices = 1  # tests override this to exercise several (fake) devices
    return c
