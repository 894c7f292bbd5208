"""The embedded default: byte-level LM continual pre-training over the 4 text domains of the fixed
corpus in amr/data/corpus (docs prose -> stdlib source -> C headers -> package licenses).

Small replay fraction (2 of 32 rows) and long enough tasks that uniform replay still
forgets: the regime where choosing what to replay matters. The `text` benchmark.

Regime checks (5 seeds of none vs uniform at 2/32, this config; experiments/regime_search.py,
setting `text_seq64` in docs/regime_search.json):

    python -m experiments.regime_search --only=text_seq64

  replay matters: uniform/none average forgetting 0.1013 / 0.1558 = 0.65x, paired
    (uniform - none) -0.054 +- 0.012 (95% CI)
  forgetting is real: uniform 0.1013, 11.5x its seed sd

Windows are 64 bytes (`text_quickstart`, at 128 bytes, passed too: 0.66x, 15.8x over 3 seeds);
64 halves a run's FLOPs so the whole sweep fits its time budget. Time: 25-33 s per (strategy,
seed) run at a 1-minute load of 4-6 on 2 cores. The splits are fixed (data seed 0) for every
run seed, so the README table stays reproducible; the run seed changes initialisation, data order
and replay draws.
"""

from configs.base import get_base_config


def get_config():
    c = get_base_config("byte_lm", "python_text")
    c.seeds = (0, 1, 2)  # three seeds: the seed-to-seed spread is part of the result
    c.model.width, c.model.heads, c.model.mlp_dim = 64, 4, 256  # 2 layers: ~0.1M parameters, CPU-sized
    c.replay.embed_dim_hint = c.model.width
    c.data.seq_len = c.model.seq_len = 64  # bytes per window (64: half the FLOPs of 128, regime search text_seq64)
    c.data.max_train_per_task = 4096  # windows of 64 bytes per task (256 KiB)
    c.data.test_per_task = 256  # held-out windows per task
    c.train.steps_per_task = 160
    c.train.batch_size = 32
    return c
