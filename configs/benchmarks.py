"""The benchmarks of `experiments/compare.py` and `experiments/ablate.py`: name -> config.

All use real data that ships with the install (no download), a small replay share and tasks
long enough that uniform replay still forgets:

    text    byte-level LM continual pre-training over the 4 text domains of the fixed
            corpus in amr/data/corpus (configs/quickstart.py, the README's embedded default)
    digits  class-incremental vision: ViT-MAE over scikit-learn's digits, 2 classes a task
    image   domain-incremental vision: ViT-MAE over scikit-image photos as domains
    subpop  sub-populations: byte-level LM over tasks that mix text domains, some recurring
            in later tasks and others vanishing; per-source held-out sets (configs/subpop.py)

Each config's docstring gives the two regime checks it passed (replay matters: uniform's
average forgetting <= 0.8x naive's with a paired 95% interval excluding 0; forgetting is
real: uniform's average forgetting > 5x its seed sd) and the command that measured them;
`experiments/regime_search.py` reruns the search, whose every setting is in
docs/regime_search.json. Settings were chosen by those checks alone (only `none` and
`uniform` were run), never by how a replay-selection strategy does. Status (uniform/none with
the paired 95% CI of uniform - none; uniform's average forgetting over its seed sd):

    text    PASSES  0.66x [-0.080, -0.032]; 15.8x  (3 seeds)
    digits  PASSES  0.76x [-0.081, -0.057]; 24x    (640 steps a task)
    image   fails (b): 0.04x [-0.346, -0.294]; 3.1x  (uniform keeps almost everything)
    subpop  fails (b): 0.32x [-0.082, -0.044]; 1.5x  (uniform's forgetting varies with the seed)

`data.resplit_per_seed` (digits, image, subpop) takes effect once the runner builds each seed's
tasks with `make_tasks(config.data, ..., run_seed=seed)`; until then every seed of a sweep shares
data seed 0's splits (experiments/regime_search.py runs one seed per workdir with data seed k).
"""

import importlib

BENCHMARKS = {
    "text": "configs.quickstart",
    "digits": "configs.digits_classes",
    "image": "configs.image_domains",
    "subpop": "configs.subpop",
}


def get(name: str, smoke: bool = False):
    """The benchmark's config; `smoke` shrinks it to one seed and a few steps (CI)."""
    if name not in BENCHMARKS:
        raise ValueError(f"benchmark: unknown benchmark {name!r}; expected one of {sorted(BENCHMARKS)}")
    config = importlib.import_module(BENCHMARKS[name]).get_config()
    config.train.eval_every = 0  # task-end evaluations only: no metric of the sweep uses the curves
    if smoke:
        config.seeds = (0,)
        config.train.steps_per_task = 2 * config.train.chunk_size
        config.train.eval_every = 0
        config.train.checkpoint_every = 0
        config.data.max_train_per_task = 4 * config.train.batch_size
        config.data.test_per_task = min(config.data.test_per_task, 32)
        config.mesh.num_devices = 1  # 2 replay rows per step cannot be split over more devices
    return config
