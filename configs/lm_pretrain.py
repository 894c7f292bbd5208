"""Byte-level LM continual pre-training at TPU scale over your own corpora: each domain is a
(name, files glob) pair, e.g.

    python -m experiments.main --config=configs/lm_pretrain.py --workdir=... \\
        --config.data.domains='("web=/data/web/*.txt", "code=/data/code/**/*.py", "papers=/data/arxiv/*.txt")'
"""

from configs.base import get_base_config


def get_config():
    c = get_base_config("byte_lm", "files")
    from amr.models import default_model_config  # noqa: PLC0415

    c.model = default_model_config("byte_lm", "base")  # ~300M parameters, seq 2048, bf16, remat
    c.data.kind = "text"  # byte windows
    c.data.seq_len = 2048  # must match the model
    c.data.domains = ()  # "name=glob" strings, in the order the tasks arrive (set on the command line)
    c.data.max_train_per_task = 0  # every window of every file
    c.data.test_per_task = 1024  # held-out windows per domain (by whole files)
    c.replay.embed_dim_hint = c.model.width  # for the ledger's k-means estimate
    c.replay.clusters_per_task = 16  # k-means arms per domain
    c.train.steps_per_task = 50_000  # optimizer steps per domain
    c.train.batch_size = 256  # global rows per step (16 of them replay at 6.25%)
    c.train.chunk_size = 100  # steps per jitted chunk
    c.train.eval_every = 5_000  # curve points per domain
    c.train.eval_batch = 256  # rows per held-out batch
    c.train.checkpoint_every = 10  # chunks between checkpoints
    c.optim.learning_rate = 3e-4  # peak learning rate
    c.optim.warmup_steps = 1_000  # re-warm every domain
    c.optim.schedule = "rewarm_redecay"  # Ibrahim et al. 2024
    c.optim.b2 = 0.95  # Adam beta2
    c.optim.weight_decay = 0.1  # decoupled weight decay
    return c
