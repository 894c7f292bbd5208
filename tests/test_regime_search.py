"""The regime search's checks and its recorded settings (no training)."""

import numpy as np
import pytest

from experiments import regime_checks as regime_search
from experiments.regime_settings import SETTINGS


def test_regime_checks_on_hand_made_seeds():
    none = [0.10, 0.11, 0.09, 0.10, 0.10]
    uniform = [0.060, 0.062, 0.058, 0.061, 0.059]
    r = regime_search.regime(none, uniform)
    np.testing.assert_allclose(r["ratio"], np.mean(uniform) / np.mean(none))
    np.testing.assert_allclose(r["uniform_af_over_sd"], np.mean(uniform) / np.std(uniform, ddof=1))
    assert r["replay_matters"] and r["forgetting_real"] and r["paired_ci95"][1] < 0


def test_regime_checks_fail_where_they_should():
    none = [0.10, 0.11, 0.09, 0.10, 0.10]
    assert not regime_search.regime(none, [0.095, 0.10, 0.085, 0.095, 0.09])["replay_matters"]  # 0.93x
    noisy = [0.01, 0.09, 0.05, 0.02, 0.08]  # 0.5x naive, but 1.5x its sd
    r = regime_search.regime(none, noisy)
    assert r["ratio"] < 0.8 and not r["forgetting_real"]


@pytest.mark.parametrize("setting", SETTINGS, ids=[s["id"] for s in SETTINGS])
def test_every_recorded_setting_still_builds_its_config(setting):
    """A setting whose override names a key the config no longer has could not be rerun as tried."""
    for strategy in regime_search.STRATEGIES:
        c = regime_search.seed_config(setting, 3, strategy)
        assert c.seeds == (3,) and c.strategies == (strategy,)


def test_a_stale_override_is_caught():
    bad = dict(SETTINGS[0], overrides={"train.no_such_key": 1})
    with pytest.raises((KeyError, AttributeError)):
        regime_search.seed_config(bad, 0, "none")
