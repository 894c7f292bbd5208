"""Slow learner: the backbone learns at `ratio` × the learning rate, the head at the full rate.

    update(θ_backbone) = ratio · update_tx(θ_backbone),   update(θ_head) = update_tx(θ_head)

The whole optimizer (clipping, Adam's moments, weight decay, the schedule) runs as configured; its
updates are then scaled per group by `optax.multi_transform` (labels from the parameter path,
`amr.methods.layers.head_labels`: the byte LM's output projection `head`; the MAE's decoder). SGD's,
AdamW's and Adafactor's updates are linear in the learning rate, so this is the learning rate
`ratio · lr` for the backbone exactly (weight decay included, as in PyTorch's per-group lr).

Zhang et al., "SLCA: Slow Learner with Classifier Alignment for Continual Learning on a Pre-trained
Model", ICCV 2023, arXiv 2303.05118 (backbone lr 1e-4 against the classifier's 1e-2: ratio 0.01).
Its classifier alignment is not implemented: see docs/METHODS.md.
"""

from __future__ import annotations

import optax

from amr.methods import layers
from amr.methods.base import Method


def slow_backbone(ratio: float) -> optax.GradientTransformation:
    """Scales the backbone's updates by `ratio`, leaves the head's (stateless)."""
    return optax.multi_transform({"head": optax.identity(), "backbone": optax.scale(ratio)}, layers.head_labels)


def slow_learner(ratio: float) -> Method:
    """`ratio`: the backbone's learning rate over the head's."""

    def wrap_optimizer(tx):
        return optax.chain(tx, slow_backbone(ratio))

    return Method("slow_learner", lambda params: {}, wrap_optimizer=wrap_optimizer)
