"""Bad configs are refused before anything compiles, with the offending key in the message."""

import pytest

from amr.runner.experiment import prepare
from configs import tiny

BAD = [
    ("strategies", lambda c: setattr(c, "strategies", ("none", "bogus"))),
    ("strategies", lambda c: setattr(c, "strategies", ())),
    ("baseline", lambda c: setattr(c, "baseline", "mir")),
    ("seeds", lambda c: setattr(c, "seeds", ())),
    ("model.name", lambda c: setattr(c.model, "name", "resnet")),
    ("model.heads", lambda c: setattr(c.model, "heads", 3)),
    ("data.source", lambda c: setattr(c.data, "source", "imagenet")),
    ("data.domains", lambda c: setattr(c.data, "domains", ("docs", "klingon"))),
    ("replay.fraction", lambda c: setattr(c.replay, "fraction", 1.0)),
    ("replay.fraction", lambda c: setattr(c.replay, "fraction", -0.1)),
    ("train.batch_size", lambda c: (setattr(c.train, "batch_size", 12), setattr(c.mesh, "num_devices", 8))),
    ("train.chunk_size", lambda c: setattr(c.train, "chunk_size", 0)),
    ("train.chunk_size", lambda c: setattr(c.train, "chunk_size", 5)),
    ("train.steps_per_task", lambda c: setattr(c.train, "steps_per_task", 0)),
    ("train.eval_every", lambda c: setattr(c.train, "eval_every", 6)),
    ("train.nonfinite", lambda c: setattr(c.train, "nonfinite", "explode")),
    ("data.max_train_per_task", lambda c: setattr(c.data, "max_train_per_task", 4)),
    ("bandit.tau", lambda c: setattr(c.bandit, "tau", 0.0)),
    ("bandit.alpha", lambda c: setattr(c.bandit, "alpha", 1.5)),
    ("bandit.window", lambda c: setattr(c.bandit, "window", 0)),
    ("bandit.epsilon", lambda c: setattr(c.bandit, "epsilon", 2.0)),
    ("bandit.estimator", lambda c: setattr(c.bandit, "estimator", "kalman")),
    ("bandit.policy", lambda c: setattr(c.bandit, "policy", "softmaxx")),
    ("bandit.normalize", lambda c: setattr(c.bandit, "normalize", "rank")),
    ("optim.name", lambda c: setattr(c.optim, "name", "lion")),
    ("optim.learning_rate", lambda c: setattr(c.optim, "learning_rate", 0.0)),
    ("optim.warmup_steps", lambda c: setattr(c.optim, "warmup_steps", 100)),
    ("optim.schedule", lambda c: setattr(c.optim, "schedule", "cyclic")),
    ("replay.reward", lambda c: setattr(c.replay, "reward", "accuracy")),
    (
        "replay.reference",
        lambda c: setattr(c.replay, "reference", "train") or setattr(c.replay, "clusters_per_task", 2),
    ),
    (
        "replay.probe_samples",
        lambda c: setattr(c.replay, "probe_samples", 8) or setattr(c.replay, "reward", "marginal"),
    ),
    ("replay.clusters_per_task", lambda c: setattr(c.replay, "clusters_per_task", 0)),
    ("replay.mir_candidates", lambda c: setattr(c.replay, "mir_candidates", 1)),
    ("memory.placement", lambda c: setattr(c.memory, "placement", "disk")),
    ("memory.staleness", lambda c: setattr(c.memory, "staleness", -1)),
    ("memory.workers", lambda c: setattr(c.memory, "workers", -2)),
    ("memory.dir", lambda c: setattr(c.memory, "dir", None)),
    ("replay.new_rows", lambda c: setattr(c.replay, "new_rows", 16)),  # no room left for the replay rows
    ("replay.new_rows", lambda c: setattr(c.replay, "new_rows", -1)),
    ("replay.row_priority", lambda c: setattr(c.replay, "row_priority", -0.5)),
    ("replay.row_priority", lambda c: setattr(c.replay, "row_priority", float("inf"))),
    ("replay.row_priority", lambda c: setattr(c.replay, "row_priority", 1.0) or setattr(c.replay, "reward", "loss")),
    (
        "replay.row_priority",
        lambda c: setattr(c.replay, "row_priority", 1.0) or setattr(c.replay, "reference", "probe"),
    ),
]


@pytest.mark.parametrize("key,mutate", BAD, ids=[f"{k}-{i}" for i, (k, _) in enumerate(BAD)])
def test_bad_config_names_key(key, mutate):
    cfg = tiny.get_config()
    mutate(cfg)
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        prepare(cfg)


def test_files_glob_matching_nothing(tmp_path):
    cfg = tiny.get_config()
    cfg.data = cfg.data.__class__(
        dict(
            source="files",
            domains=(f"mine={tmp_path}/*.txt",),
            kind="text",
            seq_len=32,
            max_train_per_task=64,
            test_per_task=8,
            seed=0,
        )
    )
    with pytest.raises(ValueError, match=r"data\.domains"):
        prepare(cfg)


def test_missing_tfds_dir(tmp_path):
    cfg = tiny.get_config()
    cfg.data = cfg.data.__class__(
        dict(
            source="tfds",
            tfds_name="domainnet",
            tfds_data_dir=str(tmp_path / "nope"),
            domains=("real",),
            image_size=8,
            channels=3,
            seed=0,
            max_train_per_task=64,
            test_per_task=8,
        )
    )
    with pytest.raises(ValueError, match=r"data\.tfds_data_dir"):
        prepare(cfg)


def test_good_config_passes():
    ctx = prepare(tiny.get_config())
    assert [t.name for t in ctx.tasks] == list(tiny.get_config().data.domains)


@pytest.mark.parametrize(
    "name", ["quickstart", "tiny", "text_domains", "image_domains", "domainnet_mae", "lm_pretrain"]
)
def test_every_shipped_config_is_valid(name):
    import importlib

    from amr.models import make_model
    from amr.runner import config_check

    cfg = importlib.import_module(f"configs.{name}").get_config()
    config_check.validate(cfg, num_devices=1)
    assert make_model(cfg.model).example_shape  # builds without compiling
