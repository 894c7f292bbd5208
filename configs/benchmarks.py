"""The benchmarks of `experiments/compare.py` and `experiments/ablate.py`: name -> config.

All three use real data that ships with the install (no download), a replay fraction of
2/32 = 6.25% and tasks long enough that uniform replay still forgets:

    text    byte-level LM continual pre-training over the 4 text domains of the fixed
            corpus in amr/data/corpus (configs/quickstart.py, the README's embedded default)
    digits  class-incremental vision: ViT-MAE over scikit-learn's digits, 2 classes a task
    image   domain-incremental vision: ViT-MAE over 5 scikit-image photos as domains
"""

import importlib

BENCHMARKS = {
    "text": "configs.quickstart",
    "digits": "configs.digits_classes",
    "image": "configs.image_domains",
}


def get(name: str, smoke: bool = False):
    """The benchmark's config; `smoke` shrinks it to one seed and a few steps (CI)."""
    if name not in BENCHMARKS:
        raise ValueError(f"benchmark: unknown benchmark {name!r}; expected one of {sorted(BENCHMARKS)}")
    config = importlib.import_module(BENCHMARKS[name]).get_config()
    if smoke:
        config.seeds = (0,)
        config.train.steps_per_task = 2 * config.train.chunk_size
        config.train.eval_every = 0
        config.train.checkpoint_every = 0
        config.data.max_train_per_task = 4 * config.train.batch_size
        config.data.test_per_task = min(config.data.test_per_task, 32)
        config.mesh.num_devices = 1  # 2 replay rows per step cannot be split over more devices
    return config
