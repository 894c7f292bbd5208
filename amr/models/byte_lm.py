"""Byte-level decoder-only language model (pre-LN GPT, vocabulary of 256 bytes).

Learned absolute positions, causal self-attention, untied output projection.
`loss` is the mean next-byte negative log-likelihood of one row over its L-1
predicted positions, in nats per byte.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from amr.models import layers
from amr.models.outputs import ModelOutputs, apply_recording_linear_outputs

VOCAB = 256


class ByteLM(nn.Module):
    width: int
    depth: int
    heads: int
    mlp_dim: int
    seq_len: int
    remat: bool = False
    dtype: Any = jnp.float32

    def setup(self):
        self.tok_embed = nn.Embed(
            VOCAB,
            self.width,
            dtype=self.dtype,
            param_dtype=jnp.float32,
            embedding_init=layers.normal_init(stddev=1.0),
        )
        self.pos_embed = self.param(
            "pos_embed", layers.normal_init(stddev=0.02), (self.seq_len, self.width), jnp.float32
        )
        self.transformer = layers.Transformer(
            self.depth, self.heads, self.mlp_dim, causal=True, remat=self.remat, dtype=self.dtype
        )
        # Small readout so the loss starts near log(256).
        self.head = nn.Dense(
            VOCAB, dtype=self.dtype, param_dtype=jnp.float32, kernel_init=layers.normal_init(stddev=0.02)
        )

    def _check(self, tokens_BxL):
        if tokens_BxL.ndim != 2 or not 1 <= tokens_BxL.shape[1] <= self.seq_len:
            raise ValueError(
                f"batch: expected int tokens of shape [B, L] with 1 <= L <= "
                f"model.seq_len={self.seq_len}, got shape {tokens_BxL.shape}"
            )

    def hidden(self, tokens_BxL):
        """Final (layer-normed) hidden states: [B, L, width] in the compute dtype."""
        self._check(tokens_BxL)
        length = tokens_BxL.shape[1]
        x_BxLxD = self.tok_embed(tokens_BxL.astype(jnp.int32))
        x_BxLxD = x_BxLxD + self.pos_embed[:length].astype(self.dtype)
        return self.transformer(x_BxLxD)

    def __call__(self, tokens_BxL):
        """Next-byte logits: float32[B, L, 256]; logits[:, t] predicts token t+1."""
        return self.head(self.hidden(tokens_BxL)).astype(jnp.float32)

    def logits_and_hidden(self, tokens_BxL):
        """(next-byte logits float32[B, L, 256], final hidden states [B, L, width]) of one pass."""
        hidden_BxLxD = self.hidden(tokens_BxL)
        return self.head(hidden_BxLxD).astype(jnp.float32), hidden_BxLxD

    def embed(self, tokens_BxL):
        """Mean over positions of the final hidden state: float32[B, width]."""
        return jnp.mean(self.hidden(tokens_BxL).astype(jnp.float32), axis=1)


def next_byte_nll(logits_BxTxV, targets_BxT):
    """Per-row mean negative log-likelihood (nats): float32[B]."""
    logp_BxTxV = jax.nn.log_softmax(logits_BxTxV.astype(jnp.float32), axis=-1)
    nll_BxT = -jnp.take_along_axis(logp_BxTxV, targets_BxT[..., None].astype(jnp.int32), axis=-1)[..., 0]
    return jnp.mean(nll_BxT, axis=1)


def make_byte_lm(cfg) -> tuple[ByteLM, Any, Any, Any, Any, Any, Any]:
    """(module, init, loss, embed, outputs, loss_and_embed, train_embed) for an already validated config.

    `outputs` and `loss_and_embed` are one forward pass over the row's first L-1 bytes (the inputs of the
    L-1 predictions), `forward`: `outputs` is all of it (`ModelOutputs`, with the linear layers' output
    magnitudes recorded), `loss_and_embed` its loss (`loss`'s value, bit for bit) and pooled final hidden
    state; `train_embed` is that pooling alone (= `embed` of the row without its last byte)."""
    module = ByteLM(
        width=cfg.width,
        depth=cfg.depth,
        heads=cfg.heads,
        mlp_dim=cfg.mlp_dim,
        seq_len=cfg.seq_len,
        remat=cfg.remat,
        dtype=jnp.dtype(cfg.dtype),
    )

    def init(key):
        dummy_1xL = jnp.zeros((1, cfg.seq_len), jnp.int32)
        return module.init(key, dummy_1xL)["params"]

    def _check_batch(batch_BxL):
        if batch_BxL.ndim != 2 or batch_BxL.shape[1] < 2:
            raise ValueError(f"batch: byte_lm loss needs shape [B, L] with L >= 2, got {batch_BxL.shape}")

    def loss(params, batch_BxL, key=None):
        """Mean next-byte NLL per row, float32[B]; `key` is unused (no dropout)."""
        del key
        _check_batch(batch_BxL)
        tokens_BxL = batch_BxL.astype(jnp.int32)
        logits_BxTxV = module.apply({"params": params}, tokens_BxL[:, :-1])
        return next_byte_nll(logits_BxTxV, tokens_BxL[:, 1:])

    def embed(params, batch_BxL):
        return module.apply({"params": params}, batch_BxL.astype(jnp.int32), method=ByteLM.embed)

    def forward(params, batch_BxL, key=None, *, record_layers: bool = False):
        """`ModelOutputs` of one pass over tokens[:, :-1]: the loss, logits [B, L-1, 256] (position t predicts
        token t+1), final hidden states [B, L-1, width], the linear layers' output magnitudes (when
        `record_layers`, else {}) and the mean of the hidden states over the L-1 positions."""
        del key
        _check_batch(batch_BxL)
        tokens_BxL = batch_BxL.astype(jnp.int32)
        (logits_BxTxV, hidden_BxTxD), layer_outputs = apply_recording_linear_outputs(
            module, params, tokens_BxL[:, :-1], method=ByteLM.logits_and_hidden, record=record_layers
        )
        nll_B = next_byte_nll(logits_BxTxV, tokens_BxL[:, 1:])
        hidden_BxTxD = hidden_BxTxD.astype(jnp.float32)
        return ModelOutputs(nll_B, logits_BxTxV, hidden_BxTxD, layer_outputs, jnp.mean(hidden_BxTxD, axis=1))

    def outputs(params, batch_BxL, key=None):
        return forward(params, batch_BxL, key, record_layers=True)

    def loss_and_embed(params, batch_BxL, key=None):
        """(`loss`, float32[B, width] mean hidden state over the L-1 input positions), one forward pass."""
        out = forward(params, batch_BxL, key)
        return out.loss, out.embedding

    def train_embed(params, batch_BxL, key=None):
        """`loss_and_embed`'s embedding without the head: `embed` of the first L-1 bytes."""
        del key
        return embed(params, batch_BxL[:, :-1])

    return module, init, loss, embed, outputs, loss_and_embed, train_embed
