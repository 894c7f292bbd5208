"""amr: adaptive memory replay for continual pre-training, in JAX/Flax."""

import setuptools

setuptools.setup(
    name="amr",
    version="0.1.0",
    description="Adaptive memory replay (bandit-selected replay) for continual pre-training in JAX/Flax.",
    long_description=open("README.md").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=setuptools.find_packages(include=["amr", "amr.*", "configs", "experiments"]),
    package_data={"amr.data": ["corpus/*"]},  # the fixed text corpus and its sha256 manifest
    include_package_data=True,
    install_requires=[
        "jax>=0.10",
        "flax>=0.10",
        "optax>=0.2",
        "orbax-checkpoint>=0.11",
        "grain>=0.2",
        "array-record>=0.5",
        "ml-collections>=0.1",
        "chex>=0.1.89",
        "tensorflow-datasets>=4.9",  # used without TensorFlow: tfds.data_source only
        "absl-py",
        "numpy",
        "scipy",  # confidence intervals (t quantiles)
        "scikit-learn",  # load_digits (bundled real data); reference checks in tests
        "scikit-image",  # bundled photos used as image domains
        "tensorboardX",
        "matplotlib",
        "tqdm",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-xdist>=3",
            "hypothesis>=6",
            "flashbax>=0.1.2",
            "nbclient",
            "nbformat",
            "ipykernel",
        ],
        "notebooks": ["jupyter", "nbclient", "nbformat", "ipykernel"],
    },
    entry_points={"console_scripts": ["amr-train=experiments.main:run"]},
)
