"""Masked autoencoder on a ViT (He et al., 2022), as in the reference implementation.

Images float32[B, H, W, C] in [0, 1] are cut into N = (H/P)^2 patches of P*P*C
values. Each row keeps a random subset of K = max(1, round((1 - mask_ratio) * N))
patches (per-row argsort of uniform noise; the noise of row b comes from
`fold_in(key, b)`, so a row's mask does not depend on the batch size). The encoder
sees the K visible patches and a cls token; a lighter decoder sees the encoded
tokens plus a shared mask token at each hidden position and predicts every patch's
pixels. The loss is the per-row mean squared error over the masked patches only
(over all patches if mask_ratio rounds to no masked patch), optionally against
per-patch normalised pixels (`norm_pix_loss`). Positions are fixed 2-d sin-cos.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from amr.models import layers
from amr.models.outputs import ModelOutputs, apply_recording_linear_outputs

_TOKEN_INIT = layers.normal_init(stddev=0.02)


def num_kept(num_patches: int, mask_ratio: float) -> int:
    """Static number of visible patches per image."""
    return max(1, int(round((1.0 - mask_ratio) * num_patches)))


def patchify(images_BxHxWxC, patch_size: int):
    """float[B, H, W, C] -> float[B, N, P*P*C]; row-major patches, (p, q, c) inside."""
    b, h, w, c = images_BxHxWxC.shape
    p = patch_size
    x = images_BxHxWxC.reshape(b, h // p, p, w // p, p, c)
    x = jnp.transpose(x, (0, 1, 3, 2, 4, 5))
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def shuffle_patches(key, batch_size: int, num_patches: int):
    """Random patch order per row: int32[B, N] (first K entries are kept)."""

    def one(i):
        noise_N = jax.random.uniform(jax.random.fold_in(key, i), (num_patches,))
        return jnp.argsort(noise_N).astype(jnp.int32)

    return jax.vmap(one)(jnp.arange(batch_size))


def patch_mask(ids_shuffle_BxN, n_keep: int):
    """float32[B, N]: 1 where the patch is hidden from the encoder, 0 where visible."""
    ids_restore_BxN = jnp.argsort(ids_shuffle_BxN, axis=1)  # rank of each patch
    return (ids_restore_BxN >= n_keep).astype(jnp.float32)


def patch_targets(images_BxHxWxC, patch_size: int, norm_pix_loss: bool):
    """Reconstruction targets float32[B, N, P*P*C]."""
    target_BxNxP = patchify(images_BxHxWxC.astype(jnp.float32), patch_size)
    if norm_pix_loss:
        mean = jnp.mean(target_BxNxP, axis=-1, keepdims=True)
        var = jnp.var(target_BxNxP, axis=-1, keepdims=True)
        target_BxNxP = (target_BxNxP - mean) / jnp.sqrt(var + 1e-6)
    return target_BxNxP


def masked_mse(pred_BxNxP, target_BxNxP, mask_BxN):
    """Per-row mean over masked patches of the per-patch MSE: float32[B]."""
    err_BxN = jnp.mean(jnp.square(pred_BxNxP.astype(jnp.float32) - target_BxNxP), axis=-1)
    return jnp.sum(err_BxN * mask_BxN, axis=1) / jnp.sum(mask_BxN, axis=1)


class ViTMAE(nn.Module):
    image_size: int
    channels: int
    patch_size: int
    width: int
    depth: int
    heads: int
    mlp_dim: int
    mask_ratio: float
    decoder_width: int
    decoder_depth: int
    decoder_heads: int
    remat: bool = False
    dtype: Any = jnp.float32

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid**2

    @property
    def n_keep(self) -> int:
        return num_kept(self.num_patches, self.mask_ratio)

    def setup(self):
        dense = lambda n: nn.Dense(  # noqa: E731
            n, dtype=self.dtype, param_dtype=jnp.float32, kernel_init=nn.initializers.xavier_uniform()
        )
        self.patch_embed = dense(self.width)
        self.cls_token = self.param("cls_token", _TOKEN_INIT, (1, 1, self.width))
        self.encoder = layers.Transformer(self.depth, self.heads, self.mlp_dim, remat=self.remat, dtype=self.dtype)
        self.decoder_embed = dense(self.decoder_width)
        self.mask_token = self.param("mask_token", _TOKEN_INIT, (1, 1, self.decoder_width))
        self.decoder = layers.Transformer(
            self.decoder_depth, self.decoder_heads, 4 * self.decoder_width, remat=self.remat, dtype=self.dtype
        )
        self.decoder_pred = dense(self.patch_size**2 * self.channels)

    def _check(self, images):
        want = (self.image_size, self.image_size, self.channels)
        if images.ndim != 4 or tuple(images.shape[1:]) != want:
            raise ValueError(
                f"batch: expected images of shape [B, {want[0]}, {want[1]}, {want[2]}], got {images.shape}"
            )

    def encode(self, images_BxHxWxC, ids_shuffle_BxN=None):
        """Encoder output on [cls, visible patches]: [B, 1+K, width].

        Without `ids_shuffle_BxN` every patch is visible, in order (K = N).
        """
        self._check(images_BxHxWxC)
        patches_BxNxP = patchify(images_BxHxWxC.astype(self.dtype), self.patch_size)
        x_BxNxD = self.patch_embed(patches_BxNxP)
        x_BxNxD = x_BxNxD + jnp.asarray(layers.sincos_2d(self.grid, self.width), self.dtype)[None]
        if ids_shuffle_BxN is not None:
            ids_keep_BxK = ids_shuffle_BxN[:, : self.n_keep]
            x_BxNxD = jnp.take_along_axis(x_BxNxD, ids_keep_BxK[..., None], axis=1)
        cls_Bx1xD = jnp.broadcast_to(self.cls_token.astype(self.dtype), (x_BxNxD.shape[0], 1, self.width))
        return self.encoder(jnp.concatenate([cls_Bx1xD, x_BxNxD], axis=1))

    def decode(self, latent_BxTxD, ids_shuffle_BxN):
        """Pixel predictions for every patch, float32[B, N, P*P*C]."""
        b = latent_BxTxD.shape[0]
        x_BxTxE = self.decoder_embed(latent_BxTxD)
        n_masked = self.num_patches - self.n_keep
        mask_tokens = jnp.broadcast_to(self.mask_token.astype(self.dtype), (b, n_masked, self.decoder_width))
        shuffled_BxNxE = jnp.concatenate([x_BxTxE[:, 1:], mask_tokens], axis=1)
        ids_restore_BxN = jnp.argsort(ids_shuffle_BxN, axis=1)
        x_BxNxE = jnp.take_along_axis(shuffled_BxNxE, ids_restore_BxN[..., None], axis=1)
        x_BxNxE = x_BxNxE + jnp.asarray(layers.sincos_2d(self.grid, self.decoder_width), self.dtype)[None]
        x_Bx1pNxE = self.decoder(jnp.concatenate([x_BxTxE[:, :1], x_BxNxE], axis=1))
        return self.decoder_pred(x_Bx1pNxE[:, 1:]).astype(jnp.float32)

    def __call__(self, images_BxHxWxC, key):
        """(pred float32[B, N, P*P*C], mask float32[B, N]) for masks drawn from `key`."""
        ids_shuffle_BxN = shuffle_patches(key, images_BxHxWxC.shape[0], self.num_patches)
        latent = self.encode(images_BxHxWxC, ids_shuffle_BxN)
        return (self.decode(latent, ids_shuffle_BxN), patch_mask(ids_shuffle_BxN, self.n_keep))

    def reconstruct(self, images_BxHxWxC, key):
        """(pred float32[B, N, P*P*C], mask float32[B, N], encoder output [B, 1+K, width]): `__call__` plus the
        encoder's last hidden states (cls and the visible patches), from one pass."""
        ids_shuffle_BxN = shuffle_patches(key, images_BxHxWxC.shape[0], self.num_patches)
        latent = self.encode(images_BxHxWxC, ids_shuffle_BxN)
        return self.decode(latent, ids_shuffle_BxN), patch_mask(ids_shuffle_BxN, self.n_keep), latent

    def masked_embed(self, images_BxHxWxC, key):
        """The free embedding alone (the encoder only): the mean over the visible patch tokens of
        `reconstruct`'s encoder output for the same key, float32[B, width]."""
        ids_shuffle_BxN = shuffle_patches(key, images_BxHxWxC.shape[0], self.num_patches)
        return pool_visible(self.encode(images_BxHxWxC, ids_shuffle_BxN))

    def embed(self, images_BxHxWxC):
        """Mean over patch tokens of the unmasked encoder output: float32[B, width]."""
        return jnp.mean(self.encode(images_BxHxWxC)[:, 1:].astype(jnp.float32), axis=1)


def pool_visible(latent_Bx1pKxD):
    """The free embedding: mean over the visible patch tokens (not cls) of the encoder output, float32[B, width]."""
    return jnp.mean(latent_Bx1pKxD[:, 1:].astype(jnp.float32), axis=1)


def make_vit_mae(cfg) -> tuple[ViTMAE, Any, Any, Any, Any, Any, Any]:
    """(module, init, loss, embed, outputs, loss_and_embed, train_embed) for an already validated config.

    `outputs` and `loss_and_embed` are one (masked) forward pass, `forward`: `outputs` is all of it
    (`ModelOutputs`, with the linear layers' output magnitudes recorded), `loss_and_embed` its loss
    (`loss`'s value, bit for bit) and pooled encoder output over the visible patches;
    `train_embed(params, batch, key)` is that pooling alone, for the same key's masks. It is not
    `embed`, which encodes every patch: training never sees the masked ones."""
    module = ViTMAE(
        image_size=cfg.image_size,
        channels=cfg.channels,
        patch_size=cfg.patch_size,
        width=cfg.width,
        depth=cfg.depth,
        heads=cfg.heads,
        mlp_dim=cfg.mlp_dim,
        mask_ratio=cfg.mask_ratio,
        decoder_width=cfg.decoder_width,
        decoder_depth=cfg.decoder_depth,
        decoder_heads=cfg.decoder_heads,
        remat=cfg.remat,
        dtype=jnp.dtype(cfg.dtype),
    )
    all_patches = module.n_keep == module.num_patches

    def init(key):
        init_key, mask_key = jax.random.split(key)
        dummy = jnp.zeros((1, cfg.image_size, cfg.image_size, cfg.channels), jnp.float32)
        return module.init(init_key, dummy, mask_key)["params"]

    def _mse(batch_BxHxWxC, pred_BxNxP, mask_BxN):
        target_BxNxP = patch_targets(batch_BxHxWxC, cfg.patch_size, cfg.norm_pix_loss)
        if all_patches:  # nothing hidden: plain autoencoding of every patch
            mask_BxN = jnp.ones_like(mask_BxN)
        return masked_mse(pred_BxNxP, target_BxNxP, mask_BxN)

    def loss(params, batch_BxHxWxC, key):
        """Masked-patch reconstruction MSE per row, float32[B]."""
        pred_BxNxP, mask_BxN = module.apply({"params": params}, batch_BxHxWxC, key)
        return _mse(batch_BxHxWxC, pred_BxNxP, mask_BxN)

    def train_embed(params, batch_BxHxWxC, key):
        return module.apply({"params": params}, batch_BxHxWxC, key, method=ViTMAE.masked_embed)

    def embed(params, batch_BxHxWxC):
        return module.apply({"params": params}, batch_BxHxWxC, method=ViTMAE.embed)

    def forward(params, batch_BxHxWxC, key, *, record_layers: bool = False):
        """`ModelOutputs` of one pass with the masks of `key`: the loss, reconstructions of every patch
        [B, N, P*P*C], the encoder's last hidden states [B, 1+K, width] (cls and visible patches), the
        linear layers' output magnitudes (when `record_layers`, else {}) and the pooled visible patches."""
        (pred_BxNxP, mask_BxN, latent), layer_outputs = apply_recording_linear_outputs(
            module, params, batch_BxHxWxC, key, method=ViTMAE.reconstruct, record=record_layers
        )
        loss_B = _mse(batch_BxHxWxC, pred_BxNxP, mask_BxN)
        return ModelOutputs(loss_B, pred_BxNxP, latent.astype(jnp.float32), layer_outputs, pool_visible(latent))

    def outputs(params, batch_BxHxWxC, key):
        return forward(params, batch_BxHxWxC, key, record_layers=True)

    def loss_and_embed(params, batch_BxHxWxC, key):
        """(`loss`, float32[B, width] pooled encoder output of the same pass)."""
        out = forward(params, batch_BxHxWxC, key)
        return out.loss, out.embedding

    return module, init, loss, embed, outputs, loss_and_embed, train_embed
