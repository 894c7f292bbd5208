"""amr-replay: adaptive memory replay for continual pre-training, in JAX/Flax (import name `amr`).

`pip install amr-replay` is the replay library (`amr.replay`): jax, flax, optax, chex, numpy.
Extras: `train` (the trainer, data, checkpoints, statistics, plots), `test` (train + the test
suite's tools), `notebooks`. The repository's `configs/` and `experiments/` are used from a
clone (`python -m experiments.main ...`) and are not installed.
"""

import os

import setuptools

HERE = os.path.dirname(os.path.abspath(__file__))

LIBRARY = ["jax>=0.10", "flax>=0.10", "optax>=0.2", "chex>=0.1.89", "numpy"]
TRAIN = [
    "orbax-checkpoint>=0.11",
    "grain>=0.2",
    "array-record>=0.5",
    "ml-collections>=0.1",
    "tensorflow-datasets>=4.9",  # used without TensorFlow: tfds.data_source only
    "absl-py",
    "scipy",  # across-seed statistics (t quantiles, paired t-test)
    "scikit-learn",  # load_digits (bundled real data); reference checks in tests
    "scikit-image",  # bundled photos used as image domains
    "tensorboardX",
    "matplotlib",
    "tqdm",
]
NOTEBOOK_TOOLS = ["nbclient", "nbformat", "ipykernel"]
TEST = TRAIN + ["pytest>=8", "pytest-xdist>=3", "hypothesis>=6", "flashbax>=0.1.2", *NOTEBOOK_TOOLS, "ruff==0.17.6"]


def _readme() -> str:
    path = os.path.join(HERE, "README.md")
    if not os.path.exists(path):
        return ""
    with open(path, encoding="utf-8") as f:
        return f.read()


setuptools.setup(
    name="amr-replay",
    version="0.1.0",
    description="Adaptive memory replay (bandit-selected replay) for continual pre-training in JAX/Flax.",
    long_description=_readme(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=setuptools.find_packages(include=["amr", "amr.*"]),
    package_data={"amr.data": ["corpus/*"]},  # the fixed text corpus and its sha256 manifest
    include_package_data=True,
    install_requires=LIBRARY,
    extras_require={
        "train": TRAIN,
        "test": TEST,
        "notebooks": TRAIN + ["jupyter", *NOTEBOOK_TOOLS],
    },
    entry_points={"console_scripts": ["amr-train=amr.runner.cli:run"]},
)
