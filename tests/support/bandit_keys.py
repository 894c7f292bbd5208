"""The checks every `bandit.<key>` with named choices gets: a bogus value refused by name, before any compile,
by the config check and by `make_bandit`; every choice accepted; a config written before the key existed
validated with the default."""

import pytest

from amr.replay.bandit import make_bandit
from amr.runner import config_check
from configs import tiny


def assert_bogus_refused(key: str, num_arms: int = 4) -> None:
    cfg = tiny.get_config()
    cfg.bandit[key] = "bogus"
    with pytest.raises(config_check.ConfigError, match=rf"^bandit\.{key}: "):
        config_check.validate(cfg, num_devices=1)
    with pytest.raises(ValueError, match=key):
        make_bandit(num_arms, **{key: "bogus"})


def assert_every_choice_passes(key: str, choices: tuple, default: str) -> None:
    cfg = tiny.get_config()
    assert cfg.bandit[key] == default  # the default did not move
    for name in choices:
        cfg.bandit[key] = name
        config_check.validate(cfg, num_devices=1)
    old = dict(cfg.bandit)
    del old[key]  # a config written before the key existed
    cfg.bandit = type(cfg.bandit)(old)
    config_check.validate(cfg, num_devices=1)
