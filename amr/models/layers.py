"""The pre-LN transformer block both models share, and fixed sin-cos positions.

Parameters are always float32; `dtype` is the compute dtype (float32 or bfloat16).
Layer norms compute their statistics in float32 whatever `dtype` is, and attention
logits and softmax are float32 (`jax.nn.dot_product_attention`). Nothing here mixes
rows of a batch: every op is per token or per sequence, so a row's output never
depends on its neighbours.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Dtype = Any

# Xavier for projections (as MAE and ViT do), zero biases.
_KERNEL_INIT = nn.initializers.xavier_uniform()


def normal_init(stddev: float):
    """`nn.initializers.normal(stddev)` whose values are the same eagerly and under `jit`.

    Under jit XLA folds the scale into the normal sampler's own last multiply
    (sqrt(2) * erfinv(u) * stddev becomes erfinv(u) * (sqrt(2) * stddev)), which rounds
    differently in the last bit; the optimization barrier keeps the two multiplies apart,
    so a jitted `init` gives the eager init's params bit for bit.
    """

    def init(key, shape, dtype=jnp.float32):
        dtype = jax.dtypes.canonicalize_dtype(dtype)
        return jax.lax.optimization_barrier(jax.random.normal(key, shape, dtype)) * jnp.array(stddev, dtype)

    return init


class Attention(nn.Module):
    """Multi-head self-attention over x_BxTxD."""

    heads: int
    causal: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x_BxTxD):
        width = x_BxTxD.shape[-1]
        head_dim = width // self.heads
        qkv_BxTx3xNxH = nn.DenseGeneral(
            features=(3, self.heads, head_dim),
            dtype=self.dtype,
            param_dtype=jnp.float32,
            kernel_init=_KERNEL_INIT,
            name="qkv",
        )(x_BxTxD)
        q_BxTxNxH, k_BxTxNxH, v_BxTxNxH = (qkv_BxTx3xNxH[:, :, i] for i in range(3))
        out_BxTxNxH = jax.nn.dot_product_attention(q_BxTxNxH, k_BxTxNxH, v_BxTxNxH, is_causal=self.causal)
        return nn.DenseGeneral(
            features=width,
            axis=(-2, -1),
            dtype=self.dtype,
            param_dtype=jnp.float32,
            kernel_init=_KERNEL_INIT,
            name="out",
        )(out_BxTxNxH)


class Mlp(nn.Module):
    mlp_dim: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x_BxTxD):
        dense = lambda n, name: nn.Dense(  # noqa: E731
            n, dtype=self.dtype, param_dtype=jnp.float32, kernel_init=_KERNEL_INIT, name=name
        )
        h_BxTxM = nn.gelu(dense(self.mlp_dim, "fc1")(x_BxTxD))
        return dense(x_BxTxD.shape[-1], "fc2")(h_BxTxM)


class Block(nn.Module):
    """x + attn(ln(x)); x + mlp(ln(x))."""

    heads: int
    mlp_dim: int
    causal: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x_BxTxD):
        ln = lambda name: nn.LayerNorm(  # noqa: E731
            epsilon=1e-6, dtype=self.dtype, param_dtype=jnp.float32, name=name
        )
        x_BxTxD = x_BxTxD + Attention(self.heads, self.causal, self.dtype, name="attn")(ln("ln1")(x_BxTxD))
        return x_BxTxD + Mlp(self.mlp_dim, self.dtype, name="mlp")(ln("ln2")(x_BxTxD))


class Transformer(nn.Module):
    """`depth` blocks and a final layer norm; `remat` checkpoints each block.

    With remat only each block's input is kept for the backward pass and the
    block's activations are recomputed: memory O(depth * B * T * D) instead of
    O(depth * B * T * (mlp_dim + heads * T)).
    """

    depth: int
    heads: int
    mlp_dim: int
    causal: bool = False
    remat: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x_BxTxD):
        block_cls = nn.remat(Block) if self.remat else Block
        for i in range(self.depth):
            x_BxTxD = block_cls(self.heads, self.mlp_dim, self.causal, self.dtype, name=f"block{i}")(x_BxTxD)
        return nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, param_dtype=jnp.float32, name="ln_final")(x_BxTxD)


def sincos_1d(positions: np.ndarray, width: int) -> np.ndarray:
    """Sin-cos features of integer `positions`: float32[len(positions), width].

    Half the features are sines, half cosines, of frequencies 1/10000^(i/(width/2)).
    An odd `width` is computed one wider and truncated.
    """
    half = (width + 1) // 2
    omega = 1.0 / 10000 ** (np.arange(half, dtype=np.float64) / half)
    angles = np.asarray(positions, np.float64)[:, None] * omega[None, :]
    return np.concatenate([np.sin(angles), np.cos(angles)], 1)[:, :width].astype(np.float32)


def sincos_2d(grid_size: int, width: int) -> np.ndarray:
    """MAE's fixed 2-d positions: float32[grid_size**2, width], row-major patches.

    The first half of the features encodes the row, the second half the column.
    """
    rows, cols = np.meshgrid(np.arange(grid_size), np.arange(grid_size), indexing="ij")
    half = (width + 1) // 2
    emb = np.concatenate([sincos_1d(rows.reshape(-1), half), sincos_1d(cols.reshape(-1), half)], 1)
    return emb[:, :width]
