"""Companion continual-learning methods (issue #13): a loss term, a gradient transformation, a state
update after each step, a task-end transform and evaluation weights, composed with any replay policy.

See `amr.methods.base.Method` for the interface and docs/METHODS.md for the methods.
"""

from amr.methods.base import Method
from amr.methods.registry import METHODS, check_config, make_methods

__all__ = ["METHODS", "Method", "check_config", "make_methods"]
