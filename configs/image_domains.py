"""ViT masked autoencoder, domain-incremental over photos bundled with scikit-image
(each photo is a domain of 16x16 patches; held-out patches come from a disjoint image region)."""

from configs.base import get_base_config


def get_config():
    c = get_base_config("vit_mae", "skimage_patches")
    c.seeds = (0, 1, 2)  # seeds run one after another
    c.data.domains = ("camera", "coffee", "hubble_deep_field", "immunohistochemistry", "brick")  # task order
    c.data.image_size = 16  # patch side in pixels
    c.data.channels = 3  # RGB (gray photos replicated)
    c.data.max_train_per_task = 2048  # patches per task
    c.data.test_per_task = 256  # held-out patches per task
    c.model.image_size, c.model.channels = 16, 3  # must match the data
    c.model.patch_size = 4  # 16 patches of 4x4 per image
    c.model.width, c.model.heads, c.model.mlp_dim = 64, 4, 256  # encoder: 2 blocks
    c.model.decoder_width, c.model.decoder_heads = 32, 4  # light decoder: 1 block
    c.replay.embed_dim_hint = c.model.width  # for the ledger's k-means estimate
    c.train.steps_per_task = 160  # optimizer steps per task
    c.train.batch_size = 32  # rows per step (2 of them replay)
    return c
