"""The paper's vision setting, TPU-sized: MAE ViT-B/16 pre-training continued across DomainNet
domains, read with tfds.data_source from ArrayRecord files prepared beforehand (no download here).

    python -m experiments.main --config=configs/domainnet_mae.py --workdir=... \\
        --config.data.tfds_data_dir=/path/to/tensorflow_datasets
"""

from configs.base import get_base_config


def get_config():
    c = get_base_config("vit_mae", "tfds")
    from amr.models import default_model_config  # noqa: PLC0415

    c.model = default_model_config("vit_mae", "base")  # ViT-B/16 encoder, 512x8 decoder, bf16, remat
    c.data.tfds_name = "domainnet"  # builder configs: one per domain
    c.data.tfds_data_dir = "~/tensorflow_datasets"  # where the prepared ArrayRecord data lives
    c.data.domains = ("real", "painting", "sketch", "clipart", "infograph", "quickdraw")  # task order
    c.data.image_size = 224  # centre-cropped and resized
    c.data.max_train_per_task = 0  # all training images of each domain
    c.data.test_per_task = 2048  # held-out images per domain
    c.replay.embed_dim_hint = c.model.width  # for the ledger's k-means estimate
    c.replay.clusters_per_task = 8  # k-means arms per domain over MAE embeddings
    c.train.steps_per_task = 20_000  # optimizer steps per domain
    c.train.batch_size = 1024  # global rows per step (64 of them replay at 6.25%)
    c.train.chunk_size = 50  # steps per jitted chunk
    c.train.eval_every = 2_000  # curve points per domain
    c.train.eval_batch = 1024  # rows per held-out batch
    c.train.checkpoint_every = 20  # chunks between checkpoints
    c.optim.learning_rate = 1.5e-4  # MAE's base lr x batch / 256
    c.optim.warmup_steps = 1_000  # re-warm every domain
    c.optim.schedule = "rewarm_redecay"  # Ibrahim et al. 2024
    c.optim.b2 = 0.95  # MAE's Adam beta2
    c.optim.weight_decay = 0.05  # MAE's weight decay
    return c
