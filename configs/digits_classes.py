"""Class-incremental vision: a ViT masked autoencoder continues pre-training on scikit-learn's
bundled 8x8 digits, two classes per task (0-1 -> 2-3 -> 4-5 -> 6-7 -> 8-9). No labels are used:
the held-out loss of each task is its masked-reconstruction loss."""

from configs.base import get_base_config


def get_config():
    c = get_base_config("vit_mae", "digits")
    c.seeds = (0, 1, 2)  # seeds run one after another
    c.data.domains = ("0-1", "2-3", "4-5", "6-7", "8-9")  # task order: two classes per task
    c.data.test_per_task = 60  # held-out digits per task (stratified); ~300 train digits remain
    c.model.image_size, c.model.channels = 8, 1  # must match the data: 8x8 gray
    c.model.patch_size = 2  # 16 patches of 2x2 per digit
    c.model.width, c.model.heads, c.model.mlp_dim = 64, 4, 256  # encoder: 2 blocks
    c.model.decoder_width, c.model.decoder_heads = 32, 4  # light decoder: 1 block
    c.replay.embed_dim_hint = c.model.width  # for the ledger's k-means estimate
    c.train.steps_per_task = 160  # optimizer steps per task
    c.train.batch_size = 32  # rows per step (2 of them replay)
    return c
