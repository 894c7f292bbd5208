"""Every name a config may use for the replay layer, read off the factories that build them.

`amr.runner.config_check`, `amr.runner.sweep` and the CLIs read these tuples; adding a
factory to `amr.replay.policies.FACTORIES` (or a bandit piece to `amr.replay.bandit_policies`)
is all it takes to make a name valid everywhere.
"""

from __future__ import annotations

from amr.replay import bandit, bandit_math, bandit_policies, clustering, policies

STRATEGIES = tuple(policies.FACTORIES)  # replay strategies (make_replay's `name`)
REWARDS = policies.REWARDS  # amr's reward
REFERENCES = policies.REFERENCES  # loss_increase's reference inside the library
BANDIT_POLICIES = tuple(bandit_policies.POLICY_FACTORIES)  # make_bandit's `policy`
ESTIMATORS = tuple(bandit_policies.ESTIMATOR_FACTORIES)  # make_bandit's `estimator`
NORMALIZERS = tuple(bandit_math.NORMALISERS)  # make_bandit's `normalize`
AGGREGATES = bandit.AGGREGATES  # make_bandit's `aggregate`
NEW_ARMS = bandit.NEW_ARMS  # make_bandit's `new_arms`
ARM_LABELS = clustering.ARM_LABELS  # how k > 1 arms split a finished task (replay.arm_labels)
