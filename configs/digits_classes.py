"""Class-incremental vision: a ViT masked autoencoder continues pre-training on scikit-learn's
bundled 8x8 digits, two classes per task (0-1 -> 2-3 -> 4-5 -> 6-7 -> 8-9). No labels are used:
the held-out loss of each task is its masked-reconstruction loss. Each run seed holds out its own
stratified sample of digits (`data.resplit_per_seed`: data seed 0 + run seed).

Regime checks (5 seeds of none vs uniform at replay 2/32; experiments/regime_search.py, setting
`digits_s640` in docs/regime_search.json):

    python -m experiments.regime_search --only=digits_s640

  replay matters: uniform/none average forgetting 0.2222 / 0.2911 = 0.76x, paired
    (uniform - none) -0.069, 95% CI [-0.081, -0.057]
  forgetting is real: uniform 0.2222, seed sd 0.0093: 24x

Chosen by those checks alone: the old setting (160 steps a task) gave 0.93x with an interval
containing 0 (`digits_base`, `digits_resplit`); 3x the learning rate 0.89x (`digits_lr3e3`);
replay 4/32 passed barely (0.72x, but only 5.6x its sd: `digits_r4`); 4x the steps per task
at 2/32 passes both with margin, keeping the share of the other benchmarks. Time: 23-37 s per
(strategy, seed) run measured with a 1-minute load average of 6-9 on 2 shared cores.
"""

from configs.base import get_base_config


def get_config():
    c = get_base_config("vit_mae", "digits")
    c.seeds = (0, 1, 2, 3, 4)  # the seeds of the regime checks; the sweep passes its own
    c.data.domains = ("0-1", "2-3", "4-5", "6-7", "8-9")  # task order: two classes per task
    c.data.test_per_task = 60  # held-out digits per task (stratified); ~300 train digits remain
    c.data.resplit_per_seed = True  # run seed k holds out its own digits (data seed 0 + k)
    c.model.image_size, c.model.channels = 8, 1  # must match the data: 8x8 gray
    c.model.patch_size = 2  # 16 patches of 2x2 per digit
    c.model.width, c.model.heads, c.model.mlp_dim = 64, 4, 256  # encoder: 2 blocks
    c.model.decoder_width, c.model.decoder_heads = 32, 4  # light decoder: 1 block
    c.replay.embed_dim_hint = c.model.width  # for the ledger's k-means estimate
    c.train.steps_per_task = 640  # optimizer steps per task (160 left replay without a measurable effect)
    c.train.batch_size = 32  # rows per step (2 of them replay)
    return c
