"""Tiny real TFDS datasets for tests, prepared as ArrayRecord into a tmp dir (no TensorFlow).

`TinyDomains` has two builder configs ("bright", "dark") with train/test splits, like
domainnet; `TinySplits` has no configs and two splits ("a", "b") used as domains.
Images are variable-sized RGB, encoded to PNG by PIL (TFDS' own encoder needs TensorFlow).
"""

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image


class _NoTFCodePath:
    # tfds 4.9.10 resolves `code_path` through `importlib_resources`, which this stack
    # does not install; the module's own path is what it would find.
    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls):
        return epath.Path(__file__)


def _image(rng, base):
    h, w = rng.integers(12, 40, size=2)
    return Image.fromarray((base + rng.integers(0, 128, size=(h, w, 3))).astype(np.uint8))


def _features():
    return tfds.features.FeaturesDict(
        {
            "image": tfds.features.Image(shape=(None, None, 3)),
            "label": tfds.features.ClassLabel(num_classes=3),
        }
    )


class TinyDomains(_NoTFCodePath, tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name="bright"), tfds.core.BuilderConfig(name="dark")]
    SIZES = {"train": 24, "test": 8}

    def _info(self):
        return self.dataset_info_from_configs(features=_features())

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(split) for split in self.SIZES}

    def _generate_examples(self, split):
        base = 128 if self.builder_config.name == "bright" else 0
        rng = np.random.default_rng([base, len(split)])
        for i in range(self.SIZES[split]):
            yield i, {"image": _image(rng, base), "label": i % 3}


class TinySplits(_NoTFCodePath, tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")
    SIZES = {"a": 20, "b": 16}

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=_features())

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(split) for split in self.SIZES}

    def _generate_examples(self, split):
        rng = np.random.default_rng(ord(split))
        for i in range(self.SIZES[split]):
            yield i, {"image": _image(rng, 64), "label": i % 3}


def prepare(data_dir: str) -> None:
    """Writes both datasets (all configs) as ArrayRecord under `data_dir`."""
    for config in ("bright", "dark"):
        TinyDomains(config=config, data_dir=data_dir, file_format="array_record").download_and_prepare()
    TinySplits(data_dir=data_dir, file_format="array_record").download_and_prepare()
