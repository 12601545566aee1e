"""AIST style-transfer experiments (seed 002, Table 6.1), one config each; every field is a flag of train.aist
(TF-free).

    python -m train.aist --config constrained --x_data tfds:multiview_shapes/shapenet_cars:train:images+masks \\
        --y_data tfds:stanford_cars_clean/maskrcnn:train --phi_weights resnet18_imagenet.npz --workdir runs/aist/c
    python -m train.aist --config tiny --x_data DIR_A --y_data DIR_B          # CPU smoke run (minutes)

Reference recipe (CycleGAN ``train.py`` defaults + the seed's changes): Adam 2e-4, beta1 0.5; 100 epochs at constant
LR then 100 epochs of linear decay to 0 (``--lr_policy linear``); image pool 50; N(0, 0.02) init; resnet_9blocks
generators, basic PatchGAN discriminators, instance norm, no dropout; lambda_A = lambda_B = 10. The seed: images
resized to 256 x 256 (no random crop), leaky ReLU 0.01 in the generators, lambda_idt 0.1, and the alpha and ResNet
feature-distance terms; batch 4 as asked by the project (the reference default is 1). One epoch = max(|X|, |Y|)
images, the smaller domain drawn again in a fresh order (the reference's unaligned dataset).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from tfsynth import config_flags
from tfsynth.config_flags import ConfigError  # noqa: F401  (re-exported)

LR_POLICIES = ("linear", "constant")
ALPHA_MODES = ("channel", "nonblack")


@dataclasses.dataclass(frozen=True)
class AISTConfig:
    """Every hyper-parameter of an AIST (CycleGAN) run."""

    # --- data ---
    x_data: str = ""  # domain X (synthetic): 'tfds:name/config:split[:feature]' or a folder/glob of PNG/JPEG files
    y_data: str = ""  # domain Y (real): same forms as x_data
    image_size: int = 256  # images are resized to image_size x image_size (the seed; no random crop)
    flip: bool = True  # random horizontal flips (reference default: on)
    max_images: int = 0  # use at most this many images per domain (0: all)
    # --- model ---
    alpha_mode: str = "channel"  # 'channel': RGBA nets, differentiable alpha; 'nonblack': the seed's RGB workaround
    activation: str = "leaky_relu"  # generator activation: 'leaky_relu' (seed) or 'relu' (reference)
    negative_slope: float = 0.01  # leaky ReLU slope in the generators (seed: 0.01)
    ngf: int = 64  # generator base width (reference 64)
    ndf: int = 64  # discriminator base width (reference 64)
    n_blocks: int = 9  # generator residual blocks (reference 9)
    phi_weights: str = ""  # Phi (ResDist): torchvision ResNet-18 state dict .npz or a .keras model; '' = random init
    # --- losses (seed Table 6.1) ---
    lambda_A: float = 10.0  # cycle weight on X -> Y -> X
    lambda_B: float = 10.0  # cycle weight on Y -> X -> Y
    lambda_idt: float = 0.1  # identity weight (times lambda_A / lambda_B)
    lambda_alpha_G: float = 2.0  # alpha loss of G: X -> Y
    lambda_alpha_F: float = 2.0  # alpha loss of F: Y -> X
    lambda_resdist_G: float = 1.75  # ResNet feature distance of G
    lambda_resdist_F: float = 1.75  # ResNet feature distance of F
    # --- optimisation ---
    batch_size: int = 4  # images per domain per step
    lr: float = 2e-4  # Adam learning rate (both generator and discriminator optimisers)
    beta_1: float = 0.5  # Adam beta1
    n_epochs: int = 100  # epochs at the initial LR
    n_epochs_decay: int = 100  # epochs of linear decay to zero (lr_policy 'linear')
    lr_policy: str = "linear"  # 'linear' (reference) or 'constant'
    pool_size: int = 50  # image pool of previously generated images for the discriminators
    steps_per_epoch: int = 0  # 0: max(|X|, |Y|) // batch_size
    # --- bookkeeping ---
    num_panels: int = 4  # X and Y images shown as x -> G(x) -> F(G(x)) panels in TensorBoard each epoch
    keep_checkpoints: int = 2  # newest checkpoints kept
    seed: int = 0  # initialisation, data order, flips and image-pool draws

    def __post_init__(self):
        if self.alpha_mode not in ALPHA_MODES:
            raise ConfigError(f"alpha_mode must be one of {ALPHA_MODES}, got {self.alpha_mode!r}")
        if self.lr_policy not in LR_POLICIES:
            raise ConfigError(f"lr_policy must be one of {LR_POLICIES}, got {self.lr_policy!r}")
        if self.activation not in ("relu", "leaky_relu"):
            raise ConfigError(f"activation must be 'relu' or 'leaky_relu', got {self.activation!r}")
        if self.image_size % 4:
            raise ConfigError(f"image_size must be a multiple of 4 (two stride-2 stages), got {self.image_size}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        config_flags.check_ranges(self, AIST_RANGES)  # every other field with a valid range, one line
        if self.total_epochs < 1:
            raise ConfigError(f"--n_epochs {self.n_epochs} --n_epochs_decay {self.n_epochs_decay} --lr_policy "
                              f"{self.lr_policy}: 0 epochs in total (decay epochs count with 'linear' only); at "
                              "least 1 is needed")

    @property
    def channels(self) -> int:
        return 4 if self.alpha_mode == "channel" else 3

    @property
    def total_epochs(self) -> int:
        return self.n_epochs + (self.n_epochs_decay if self.lr_policy == "linear" else 0)

    def loss_weights(self) -> dict:
        return {k: getattr(self, k) for k in ("lambda_A", "lambda_B", "lambda_idt", "lambda_alpha_G",
                                                "lambda_alpha_F", "lambda_resdist_G", "lambda_resdist_F")}

    def replace(self, **overrides) -> "AISTConfig":
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# Valid values of the fields (tfsynth.config_flags.check_ranges rules).
AIST_RANGES = {
    "image_size": ">= 1", "max_images": ">= 0", "alpha_mode": "{channel, nonblack}", "activation": "{leaky_relu, relu}",
    "negative_slope": ">= 0", "ngf": ">= 1", "ndf": ">= 1", "n_blocks": ">= 0", "lambda_A": ">= 0", "lambda_B": ">= 0",
    "lambda_idt": ">= 0", "lambda_alpha_G": ">= 0", "lambda_alpha_F": ">= 0", "lambda_resdist_G": ">= 0",
    "lambda_resdist_F": ">= 0", "batch_size": ">= 1", "lr": "> 0", "beta_1": "[0, 1)", "n_epochs": ">= 0",
    "n_epochs_decay": ">= 0", "lr_policy": "{linear, constant}", "pool_size": ">= 0", "steps_per_epoch": ">= 0",
    "num_panels": ">= 0", "keep_checkpoints": ">= 1",
}


def constrained() -> AISTConfig:
    """Seed experiment 2 (Table 6.1): lambda_alpha 2, lambda_ResDist 1.75. ~4 days on a GTX 1080 Ti in the seed."""
    return AISTConfig()


def less_constrained() -> AISTConfig:
    """Seed experiment 3 (Table 6.1): lambda_alpha 1, lambda_ResDist 1.25."""
    return AISTConfig(lambda_alpha_G=1.0, lambda_alpha_F=1.0, lambda_resdist_G=1.25, lambda_resdist_F=1.25)


def cyclegan() -> AISTConfig:
    """The unmodified reference CycleGAN (ReLU, lambda_identity 0.5, no alpha / feature terms, batch 1) on RGB."""
    return AISTConfig(alpha_mode="nonblack", activation="relu", lambda_idt=0.5, lambda_alpha_G=0.0,
                      lambda_alpha_F=0.0, lambda_resdist_G=0.0, lambda_resdist_F=0.0, batch_size=1)


def tiny() -> AISTConfig:
    """CPU smoke run: the constrained losses at 32 px with narrow nets (ngf = ndf = 8, 2 blocks), 3 + 3 epochs.

    Not the reference widths (see `constrained` for those); it exists to run the whole job in a minute.
    """
    return constrained().replace(image_size=32, ngf=8, ndf=8, n_blocks=2, batch_size=2, n_epochs=3,
                                 n_epochs_decay=3, pool_size=4, num_panels=2, lr=1e-3)


CONFIGS = {"constrained": constrained, "less_constrained": less_constrained, "cyclegan": cyclegan, "tiny": tiny}


def get_config(name: str, overrides: Optional[dict] = None) -> AISTConfig:
    return config_flags.get_config(CONFIGS, AISTConfig, name, overrides)
