"""Annotation-Invariant Style Transfer (seed 002, ch. 4): CycleGAN with alpha and feature-distance losses.

Naming follows the seed: X = synthetic renders, Y = real photos, G: X -> Y, F: Y -> X, discriminators D_X, D_Y
(the reference code's real_A/real_B, netG_A/netG_B, netD_B/netD_A). Images are in [-1, 1], (B, H, W, C) with C = 3
(RGB, the seed's setting) or C = 4 (RGBA: alpha in channel 3, mapped to [0, 1] as (a + 1) / 2).

Generator objective (reference ``cycle_gan_model.py`` + the seed's §4.1 terms)::

    LSGAN   mean((D_Y(G(x)) - 1)^2) + mean((D_X(F(y)) - 1)^2)
    cycle   lambda_A * mean|F(G(x)) - x| + lambda_B * mean|G(F(y)) - y|
    idt     lambda_B * lambda_idt * mean|G(y) - y| + lambda_A * lambda_idt * mean|F(x) - x|
    alpha   lambda_alpha_G * E_x[(mean|Alpha(x) - Alpha(G(x))|)^2] + lambda_alpha_F * E_y[...F(y)...]
    resdist lambda_resdist_G * E_x[(mean|Phi(x) - Phi(G(x))|)^2] + lambda_resdist_F * E_y[...F(y)...]

Discriminators: 0.5 * (mean((D(real) - 1)^2) + mean(D(pool(fake))^2)), fakes drawn through a 50-image pool.
"|.|_1^2" is read as the squared per-image *mean* absolute error (PyTorch's ``L1Loss`` is a mean; a per-image sum
would be ~65,000x larger at 256 px and swamp every other term at the seed's lambda of 1-2), squared per image, then
averaged over the batch (the expectation sits outside the square).

Alpha modes:
- ``"channel"`` (default): RGBA generators (4 in, 4 out); Alpha is the alpha channel, differentiable, so the
  alpha loss really trains G and F to keep outlines.
- ``"nonblack"``: the seed's workaround on RGB images, Alpha(x) = 1 where any channel > -1. It is a step function:
  its gradient is zero almost everywhere, so in this mode the alpha terms are reported but cannot steer the
  generators (as in the seed's PyTorch code, where ``(x > -1).float()`` carries no gradient). Inputs should be
  colour-corrected first (`colour_correct`: RGB (0, 0, 0) with alpha > 0 -> (1, 1, 1)).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from tfsynth.models import cyclegan, resnet as resnet_lib
from tfsynth.imagenet import IMAGENET_MEAN, IMAGENET_STD

ALPHA_MODES = ("channel", "nonblack")


@dataclasses.dataclass(frozen=True)
class LossWeights:
    """The lambdas of the generator objective (seed Table 6.1 names)."""

    lambda_A: float = 10.0
    lambda_B: float = 10.0
    lambda_idt: float = 0.1
    lambda_alpha_G: float = 2.0
    lambda_alpha_F: float = 2.0
    lambda_resdist_G: float = 1.75
    lambda_resdist_F: float = 1.75

    @property
    def uses_phi(self) -> bool:
        return self.lambda_resdist_G > 0 or self.lambda_resdist_F > 0


PRESETS = {
    # Seed 002 Table 6.1.
    "constrained": LossWeights(10, 10, 0.1, 2, 2, 1.75, 1.75),
    "less_constrained": LossWeights(10, 10, 0.1, 1, 1, 1.25, 1.25),
    # The reference CycleGAN (no annotation terms; its default lambda_identity is 0.5).
    "cyclegan": LossWeights(10, 10, 0.5, 0, 0, 0, 0),
}


# ----------------------------------------------------------------------------------------------------- alpha + losses

def alpha_of(images, mode: str):
    """(B, H, W, 1) alpha in [0, 1] of images in [-1, 1] (see the module docstring for the modes)."""
    if mode == "channel":
        if images.shape[-1] != 4:
            raise ValueError(f"alpha mode 'channel' needs RGBA images (4 channels), got {images.shape[-1]}")
        return (images[..., 3:4] + 1.0) * 0.5
    if mode == "nonblack":
        return tf.cast(tf.reduce_any(images[..., :3] > -1.0, axis=-1, keepdims=True), images.dtype)
    raise ValueError(f"alpha mode must be one of {ALPHA_MODES}, got {mode!r}")


def colour_correct(rgba: np.ndarray) -> np.ndarray:
    """Seed §4.1.1.1 on uint8 RGBA: pixels with RGB (0, 0, 0) and alpha > 0 become (1, 1, 1)."""
    rgba = np.array(rgba, copy=True)
    if rgba.dtype != np.uint8 or rgba.shape[-1] != 4:
        raise ValueError(f"colour_correct expects uint8 RGBA (..., 4), got {rgba.dtype} {rgba.shape}")
    black = (rgba[..., :3] == 0).all(-1) & (rgba[..., 3] > 0)
    rgba[black, :3] = 1
    return rgba


def lsgan_loss(scores, target: float):
    """nn.MSELoss()(scores, full_like(scores, target)): mean over every patch score."""
    return tf.reduce_mean(tf.square(tf.cast(scores, tf.float32) - target))


def l1_loss(a, b):
    return tf.reduce_mean(tf.abs(tf.cast(a, tf.float32) - tf.cast(b, tf.float32)))


def squared_l1_loss(a, b):
    """E over the batch of (per-image mean |a - b|)^2."""
    diff = tf.abs(tf.cast(a, tf.float32) - tf.cast(b, tf.float32))
    per_image = tf.reduce_mean(tf.reshape(diff, [tf.shape(diff)[0], -1]), axis=1)
    return tf.reduce_mean(tf.square(per_image))


def mask_iou(alpha_a, alpha_b, threshold: float = 0.5):
    """Mean over the batch of IoU(alpha_a > t, alpha_b > t); an image with both masks empty counts as 1."""
    a = tf.reshape(alpha_a > threshold, [tf.shape(alpha_a)[0], -1])
    b = tf.reshape(alpha_b > threshold, [tf.shape(alpha_b)[0], -1])
    inter = tf.reduce_sum(tf.cast(a & b, tf.float32), 1)
    union = tf.reduce_sum(tf.cast(a | b, tf.float32), 1)
    return tf.reduce_mean(tf.where(union > 0, inter / tf.maximum(union, 1.0), 1.0))


# --------------------------------------------------------------------------------------------------- feature extractor

def feature_extractor(weights: str = "", image_size: Optional[int] = None, name: str = "phi") -> keras.Model:
    """Phi: RGB in [-1, 1] -> ImageNet normalisation -> ResNet-18 without avgpool and fc (layer4 map).

    `weights`: '' (random init: only for tests and smoke runs), a torchvision ResNet-18 state dict saved as .npz
    (name -> array; fc.* ignored), or a Keras model file (.keras) used as-is on [0, 255] RGB input (e.g. a
    `train.pretrain` backbone). Never downloads anything.
    """
    shape = (image_size, image_size, 3)
    images = keras.Input(shape=shape, name="image")
    x01 = keras.layers.Rescaling(0.5, offset=0.5, name="to_unit")(images)
    if weights.endswith(".keras"):
        import tfsynth.models.classifier  # noqa: F401  (registers layers used by saved backbones)
        from tfsynth.models.files import load_keras_model

        user = load_keras_model(weights, "--phi_weights")  # ModelFileError says what a bad file is
        user.trainable = False
        feats = user(keras.layers.Rescaling(255.0, name="to_255")(x01))
        return keras.Model(images, feats, name=name)
    mean, std = np.asarray(IMAGENET_MEAN), np.asarray(IMAGENET_STD)
    x = keras.layers.Rescaling((1 / std).tolist(), offset=(-mean / std).tolist(), name="imagenet_norm")(x01)
    net = resnet_lib.resnet18(include_top=False, input_shape=shape, name="resnet18")
    if weights:
        if not weights.endswith(".npz"):
            raise ValueError(f"{weights}: Phi weights must be a torchvision state dict as .npz or a .keras model")
        with np.load(weights) as f:
            state = {k: f[k] for k in f.files if not k.startswith("fc.")}
        resnet_lib.load_torchvision_state_dict(net, state, strict=True)
    net.trainable = False
    return keras.Model(images, net(x, training=False), name=name)


# ---------------------------------------------------------------------------------------------------------- image pool

@keras.saving.register_keras_serializable(package="tfsynth")
class ImagePool(keras.layers.Layer):
    """The reference ``ImagePool`` as graph state (so it lives in checkpoints and inside a compiled train_step).

    For each image of the batch, in order: while fewer than `pool_size` images are stored, store it and return it;
    afterwards, with probability 1/2 (u > 0.5) return a uniformly chosen stored image and store the new one in its
    place, else return the new image. `query_with_draws` takes the draws (u, index) explicitly so the semantics can be
    checked against `numpy_image_pool`; `call` draws them statelessly from (seed, step).
    """

    def __init__(self, pool_size: int = 50, image_shape=(256, 256, 3), seed: int = 0, **kw):
        super().__init__(**kw)
        self.pool_size = int(pool_size)
        self.image_shape = tuple(int(d) for d in image_shape)
        self.seed = int(seed)

    def build(self, input_shape=None):
        self.images = self.add_weight(shape=(max(self.pool_size, 1),) + self.image_shape, initializer="zeros",
                                      trainable=False, name="images")
        self.count = self.add_weight(shape=(), initializer="zeros", dtype="int32", trainable=False, name="count")
        self.calls = self.add_weight(shape=(), initializer="zeros", dtype="int32", trainable=False, name="calls")
        self.built = True

    def call(self, images):
        if not self.built:
            self.build()
        batch = images.shape[0]
        if batch is None:
            raise ValueError("ImagePool needs a static batch size")
        seed = tf.stack([tf.constant(self.seed, tf.int32), tf.convert_to_tensor(self.calls)])
        u = tf.random.stateless_uniform([batch], seed=seed)
        idx = tf.random.stateless_uniform([batch], seed=seed + [0, 1 << 20], maxval=max(self.pool_size, 1),
                                          dtype=tf.int32)
        self.calls.assign_add(1)
        return self.query_with_draws(images, u, idx)

    def query_with_draws(self, images, u, idx):
        if not self.built:
            self.build()
        if self.pool_size == 0:
            return images
        buf = self.images.value
        out = []
        for i in range(images.shape[0]):
            img = tf.cast(images[i], buf.dtype)

            def fill(img=img):
                buf[self.count.value].assign(img)
                self.count.assign_add(1)
                return img

            def swap(img=img, i=i):
                def take():
                    old = tf.identity(buf[idx[i]])
                    with tf.control_dependencies([old]):
                        stored = buf[idx[i]].assign(img)
                    with tf.control_dependencies([stored]):
                        return tf.identity(old)
                return tf.cond(u[i] > 0.5, take, lambda: img)

            out.append(tf.cond(self.count.value < self.pool_size, fill, swap))
        return tf.cast(tf.stack(out), images.dtype)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "image_shape": list(self.image_shape),
                "seed": self.seed}


def numpy_image_pool(batches, draws, pool_size: int):
    """Plain transcription of the reference ImagePool.query for given draws [(u, idx) per batch]; returns outputs."""
    pool, outs = [], []
    for images, (u, idx) in zip(batches, draws):
        ret = []
        for i, img in enumerate(images):
            if pool_size == 0:
                ret.append(img)
            elif len(pool) < pool_size:
                pool.append(img.copy())
                ret.append(img)
            elif u[i] > 0.5:
                old = pool[idx[i]].copy()
                pool[idx[i]] = img.copy()
                ret.append(old)
            else:
                ret.append(img)
        outs.append(np.stack(ret))
    return outs


# ------------------------------------------------------------------------------------------------------------ the model

class AISTCycleGAN(keras.Model):
    """G, F, D_X, D_Y, Phi and the two image pools, trained by one custom `train_step` per (x, y) batch pair.

    `compile(g_optimizer=..., d_optimizer=...)`; `fit` on a dataset of (x, y) batches, both (B, H, W, C) in [-1, 1].
    Each step updates G and F on the generator objective, then D_X and D_Y on pooled fakes (reference order).
    """

    def __init__(self, image_size: int = 256, channels: int = 3, alpha_mode: str = "nonblack",
                 weights: LossWeights = PRESETS["constrained"], phi: Optional[keras.Model] = None,
                 activation: str = "leaky_relu", negative_slope: float = 0.01, pool_size: int = 50,
                 batch_size: int = 4, seed: int = 0, ngf: int = 64, ndf: int = 64, n_blocks: int = 9, **kw):
        super().__init__(**kw)
        if alpha_mode not in ALPHA_MODES:
            raise ValueError(f"alpha_mode must be one of {ALPHA_MODES}, got {alpha_mode!r}")
        if alpha_mode == "channel" and channels != 4:
            raise ValueError("alpha_mode 'channel' needs channels=4 (RGBA)")
        self.alpha_mode, self.loss_weights, self.batch_size = alpha_mode, weights, int(batch_size)
        shape = (image_size, image_size, channels)
        gen = dict(input_shape=shape, output_channels=channels, ngf=ngf, n_blocks=n_blocks, activation=activation,
                   negative_slope=negative_slope)
        self.G = cyclegan.resnet_generator(name="G", **gen)
        self.F = cyclegan.resnet_generator(name="F", **gen)
        self.D_X = cyclegan.patch_discriminator(shape, ndf=ndf, name="D_X")
        self.D_Y = cyclegan.patch_discriminator(shape, ndf=ndf, name="D_Y")
        self.phi = phi if phi is not None else (feature_extractor("", image_size) if weights.uses_phi else None)
        self.pool_X = ImagePool(pool_size, shape, seed=seed * 2 + 1, name="pool_X")
        self.pool_Y = ImagePool(pool_size, shape, seed=seed * 2 + 2, name="pool_Y")
        self.pool_X.build(), self.pool_Y.build()

    def compile(self, g_optimizer, d_optimizer, **kw):
        super().compile(**kw)
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer

    def call(self, x, training=False):
        return self.G(x, training=training)

    def _phi(self, images):
        return self.phi(images[..., :3], training=False)

    def generator_losses(self, x, y, training=True):
        """Every generator loss term (dict of scalars) and the fakes, for one batch."""
        w = self.loss_weights
        fake_y = self.G(x, training=training)
        rec_x = self.F(fake_y, training=training)
        fake_x = self.F(y, training=training)
        rec_y = self.G(fake_x, training=training)
        t = {
            "gan_G": lsgan_loss(self.D_Y(fake_y, training=training), 1.0),
            "gan_F": lsgan_loss(self.D_X(fake_x, training=training), 1.0),
            "cycle_X": w.lambda_A * l1_loss(rec_x, x),
            "cycle_Y": w.lambda_B * l1_loss(rec_y, y),
        }
        zero = tf.constant(0.0)
        if w.lambda_idt > 0:
            t["idt_G"] = w.lambda_B * w.lambda_idt * l1_loss(self.G(y, training=training), y)
            t["idt_F"] = w.lambda_A * w.lambda_idt * l1_loss(self.F(x, training=training), x)
        else:
            t["idt_G"] = t["idt_F"] = zero
        ax, ay = alpha_of(x, self.alpha_mode), alpha_of(y, self.alpha_mode)
        afy, afx = alpha_of(fake_y, self.alpha_mode), alpha_of(fake_x, self.alpha_mode)
        t["alpha_G"] = w.lambda_alpha_G * squared_l1_loss(ax, afy)
        t["alpha_F"] = w.lambda_alpha_F * squared_l1_loss(ay, afx)
        t["resdist_G"] = (w.lambda_resdist_G * squared_l1_loss(self._phi(x), self._phi(fake_y))
                          if w.lambda_resdist_G > 0 else zero)
        t["resdist_F"] = (w.lambda_resdist_F * squared_l1_loss(self._phi(y), self._phi(fake_x))
                          if w.lambda_resdist_F > 0 else zero)
        t["g_total"] = tf.add_n([v for k, v in t.items()])
        t["mask_iou_G"] = mask_iou(ax, afy)
        t["mask_iou_F"] = mask_iou(ay, afx)
        return t, fake_x, fake_y

    def discriminator_losses(self, x, y, fake_x, fake_y, training=True):
        d_y = 0.5 * (lsgan_loss(self.D_Y(y, training=training), 1.0)
                     + lsgan_loss(self.D_Y(fake_y, training=training), 0.0))
        d_x = 0.5 * (lsgan_loss(self.D_X(x, training=training), 1.0)
                     + lsgan_loss(self.D_X(fake_x, training=training), 0.0))
        return {"d_X": d_x, "d_Y": d_y}

    def train_step(self, data):
        x, y = data
        g_vars = self.G.trainable_variables + self.F.trainable_variables
        with tf.GradientTape() as tape:
            terms, fake_x, fake_y = self.generator_losses(x, y)
        self.g_optimizer.apply_gradients(zip(tape.gradient(terms["g_total"], g_vars), g_vars))
        fake_x = self.pool_X(tf.stop_gradient(fake_x))
        fake_y = self.pool_Y(tf.stop_gradient(fake_y))
        d_vars = self.D_X.trainable_variables + self.D_Y.trainable_variables
        with tf.GradientTape() as tape:
            d_terms = self.discriminator_losses(x, y, fake_x, fake_y)
            d_total = d_terms["d_X"] + d_terms["d_Y"]
        self.d_optimizer.apply_gradients(zip(tape.gradient(d_total, d_vars), d_vars))
        return {**terms, **d_terms}

    def test_step(self, data):
        x, y = data
        terms, fake_x, fake_y = self.generator_losses(x, y, training=False)
        return {**terms, **self.discriminator_losses(x, y, fake_x, fake_y, training=False)}


def adam(learning_rate: float = 2e-4, beta_1: float = 0.5) -> keras.optimizers.Optimizer:
    """torch.optim.Adam(lr, betas=(beta_1, 0.999)) as the reference (eps 1e-8, not Keras' 1e-7)."""
    return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta_1, beta_2=0.999, epsilon=1e-8)


def linear_decay_lr(epoch: int, base_lr: float, n_epochs: int, n_epochs_decay: int, epoch_count: int = 1) -> float:
    """The reference 'linear' policy: constant for n_epochs, then linearly to ~0 over n_epochs_decay (0-based epoch)."""
    return base_lr * (1.0 - max(0, epoch + epoch_count - n_epochs) / float(n_epochs_decay + 1))
