"""Sub-populations (the paper's premise: models forget "data sub-populations observed too long
ago"): byte-level LM continual pre-training where each task mixes two of the fixed text corpus's
domains in equal parts (amr/data/mixture.py), some recurring in later tasks, others vanishing:

    headers+docs -> stdlib+docs -> licenses+docs -> licenses

The code sources vanish (`headers` after the first task, `stdlib` after the second), the prose
sources recur (`docs` to the third task, `licenses` to the end). The older a task, the more of
it the later tasks do not cover, so task-level forgetting differs between arms for a reason a
replay policy can see. Every task
carries per-source held-out sets (`Task.sources`) for per-source losses; a task's own held-out
set is its mixture. Held-out documents are drawn per seed (`data.resplit_per_seed`).

Regime checks (experiments/regime_search.py; see docs/regime_search.json): filled in below.
"""

from configs.base import get_base_config


def get_config():
    c = get_base_config("byte_lm", "mixture")
    c.seeds = (0, 1, 2, 3, 4)  # the seeds of the regime checks; the sweep passes its own
    c.model.width, c.model.heads, c.model.mlp_dim = 64, 4, 256  # as the quickstart: 2 layers, ~0.1M parameters
    c.replay.embed_dim_hint = c.model.width
    c.data.domains = ("headers+docs", "stdlib+docs", "licenses+docs", "licenses")
    c.data.max_train_per_task = 1792  # windows of 128 bytes per task, equal parts of its sources (docs holds ~3,000)
    c.data.test_per_task = 256  # held-out windows per task: equal parts of its sources
    c.data.test_per_source = 256  # held-out windows per source (Task.sources)
    c.data.resplit_per_seed = True  # run seed k holds out its own documents (data seed 0 + k)
    c.train.steps_per_task = 160
    c.train.batch_size = 32  # 2 rows of them replay (replay.fraction = 2/32)
    return c
