"""Fine-tuning models: a pre-trained network with its classification head replaced.

Every source goes through a torchvision-layout state dict (`tfsynth.models.reference_nets.torch_layout`):

    --backbone PATH.keras      backbone.keras or model.keras of train.pretrain / train.finetune (architecture
                               inferred from the weight names), or any .keras model holding a torchvision-named net
    --reference ARCH --weights PATH   alexnet | vgg16 | resnet50..., weights from .keras / .npz / .h5
    --init scratch             nothing loaded

The fine-tuning model has the layout of `tfsynth.models.classifier.build_classifier` (image -> 'normalize' ->
nested '<arch>' with torchvision names -> float32 'logits'), with every weight except the head copied from the
source and the head (ResNet 'fc', AlexNet/VGG 'classifier.6') newly initialised for the downstream classes as
PyTorch's `nn.Linear` (U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias), as the official fine-tuning code
does with `model.fc = nn.Linear(2048, numof_classes)`.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from typing import Optional, Sequence

import keras
import numpy as np

from tfsynth.models import reference_nets, resnet as resnet_lib
from tfsynth.models.classifier import ARCHITECTURES as RESNETS, build_classifier, normalization_layer
from tfsynth.imagenet import IMAGENET_MEAN, IMAGENET_STD

ARCHS = tuple(RESNETS) + tuple(reference_nets.REFERENCE_NETS)
HEADS = {**{arch: "fc" for arch in RESNETS}, **reference_nets.HEADS}
SOURCE_KINDS = ("scratch", "backbone", "reference")


class SourceError(ValueError):
    """A pre-trained source that cannot be used (missing file, unknown architecture, mismatching weights)."""


@dataclasses.dataclass(frozen=True)
class Source:
    """Where the fine-tuned network's initial weights come from."""

    kind: str  # scratch | backbone | reference
    path: Optional[str] = None  # backbone .keras file, or the reference net's weights file
    arch: Optional[str] = None  # reference: the named architecture; scratch: the config's; backbone: inferred
    name: Optional[str] = None  # row label in transfer tables (default: see `default_name`)

    def __post_init__(self):
        if self.kind not in SOURCE_KINDS:
            raise SourceError(f"unknown source kind {self.kind!r}; valid: {', '.join(SOURCE_KINDS)}")
        if self.kind != "scratch" and not self.path:
            raise SourceError(f"a {self.kind} source needs a file path")
        if self.kind == "reference" and self.arch not in ARCHS:
            raise SourceError(f"unknown --reference {self.arch!r}; valid: {', '.join(ARCHS)}")

    def default_name(self) -> str:
        """'scratch'; a train.pretrain backbone: its --data spec (from the run's config.json), else the run's
        directory name; a reference net: '<arch>:<weights file stem>'."""
        if self.kind == "scratch":
            return "scratch"
        if self.kind == "reference":
            return f"{self.arch}:{_stem(self.path)}"
        run_dir = os.path.dirname(os.path.abspath(self.path))
        config_path = os.path.join(run_dir, "config.json")
        if os.path.exists(config_path):
            try:
                with open(config_path, encoding="utf-8") as f:
                    data = json.load(f).get("data")
                if isinstance(data, str) and data:
                    return data
            except (OSError, ValueError):
                pass
        return os.path.basename(run_dir) or _stem(self.path)

    @property
    def label(self) -> str:
        return self.name or self.default_name()

    def as_dict(self) -> dict:
        return {"kind": self.kind, "path": os.path.abspath(self.path) if self.path else None, "arch": self.arch,
                "name": self.label}


def _stem(path: str) -> str:
    base = os.path.basename(path)
    for suffix in (".weights.h5", ".keras", ".npz", ".hdf5", ".h5"):
        if base.lower().endswith(suffix):
            return base[:-len(suffix)]
    return os.path.splitext(base)[0]


# --- architectures ------------------------------------------------------------------------------------------------

def build_transfer_classifier(arch: str, num_classes: int, mean: Sequence[float] = IMAGENET_MEAN,
                              std: Sequence[float] = IMAGENET_STD, name: str = "classifier") -> keras.Model:
    """image [0, 255] -> 'normalize' -> nested `arch` (torchvision names) -> float32 'logits' (B, num_classes)."""
    if arch in RESNETS:
        return build_classifier(num_classes, arch=arch, mean=mean, std=std, name=name)
    if arch not in reference_nets.REFERENCE_NETS:
        raise SourceError(f"unknown architecture {arch!r}; valid: {', '.join(ARCHS)}")
    net = reference_nets.REFERENCE_NETS[arch](num_classes=num_classes, input_shape=(None, None, 3), name=arch)
    images = keras.Input(shape=(None, None, 3), name="image")
    x = normalization_layer(mean, std)(images)
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")(net(x))
    return keras.Model(images, logits, name=name)


def network_of(model: keras.Model) -> keras.Model:
    """The torchvision-named network inside a classifier / backbone (or `model` itself if it is one)."""
    return reference_nets.torch_named_net(model)


def infer_arch(keys) -> str:
    """The architecture of a torchvision-layout state dict, from its weight names."""
    keys = set(keys)
    blocks = {}
    for key in keys:
        match = re.match(r"^layer([1-4])\.(\d+)\.", key)
        if match:
            blocks.setdefault(int(match[1]), set()).add(int(match[2]))
    if "conv1.weight" in keys and len(blocks) == 4:
        counts = tuple(len(blocks[s]) for s in (1, 2, 3, 4))
        bottleneck = "layer1.0.conv3.weight" in keys
        for depth, (is_bottleneck, layout) in resnet_lib._CONFIGS.items():
            if is_bottleneck == bottleneck and tuple(layout) == counts:
                return f"resnet{depth}"
        raise SourceError(f"ResNet-like weights with blocks {counts} per stage match no resnet18/34/50/101/152")
    convs = sorted(int(m[1]) for k in keys for m in [re.match(r"^features\.(\d+)\.weight$", k)] if m)
    if convs == [0, 3, 6, 8, 10]:
        return "alexnet"
    if convs == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]:
        return "vgg16"
    sample = sorted(keys)[:6]
    raise SourceError(f"cannot tell the architecture of weights named like {sample}; supported: {', '.join(ARCHS)}")


def normalization_of(model: keras.Model) -> Optional[tuple[tuple[float, ...], tuple[float, ...]]]:
    """(mean, std) on [0, 1] pixels of a model's 'normalize' layer (see classifier.normalization_layer), if any."""
    try:
        layer = model.get_layer("normalize")
    except ValueError:
        return None
    scale = np.broadcast_to(np.asarray(layer.scale, np.float64), (3,))
    offset = np.broadcast_to(np.asarray(layer.offset, np.float64), (3,))
    std = 1.0 / (255.0 * scale)
    mean = -offset * std
    return tuple(float(round(v, 6)) for v in mean), tuple(float(round(v, 6)) for v in std)


# --- sources ------------------------------------------------------------------------------------------------------

def load_source(source: Source) -> tuple[str, dict, Optional[tuple]]:
    """(arch, torchvision-layout state dict, (mean, std) of the source's own normalisation or None)."""
    if source.kind == "scratch":
        raise SourceError("a scratch source has no weights")
    path = source.path
    if not os.path.isfile(path):
        raise SourceError(f"{'--backbone' if source.kind == 'backbone' else '--weights'} file {path} does not exist")
    normalization = None
    if path.lower().endswith(".keras"):
        import tfsynth.training.optim  # noqa: F401 - registers TorchSGD (model.keras files keep their optimizer)

        from tfsynth.models.files import ModelFileError, load_keras_model

        try:
            model = load_keras_model(path, "--backbone" if source.kind == "backbone" else "--weights")
        except ModelFileError as e:  # not a Keras file, a damaged one, or one needing unknown custom objects
            raise SourceError(str(e)) from None
        try:
            state_dict = reference_nets.to_torchvision_state_dict(network_of(model))
        except ValueError as e:
            raise SourceError(f"{path}: {e}") from None
        normalization = normalization_of(model)
    else:
        try:
            state_dict = reference_nets.read_state_dict(path)
        except (ValueError, FileNotFoundError) as e:
            raise SourceError(str(e)) from None
    try:
        arch = infer_arch(state_dict)
    except SourceError as e:
        if source.kind != "reference":
            raise SourceError(f"{path}: {e}") from None
        arch = source.arch  # incomplete weights: the strict load names what is missing
    if source.kind == "reference" and arch != source.arch:
        raise SourceError(f"--weights {path} hold {arch} weights, but --reference is {source.arch}")
    return arch, state_dict, normalization


def reinitialise_head(model: keras.Model, arch: str) -> None:
    """Draws the head (last Linear) afresh as PyTorch's nn.Linear: weight and bias U(-1/sqrt(fan_in), ...)."""
    head = network_of(model).get_layer(HEADS[arch])
    bound = 1.0 / math.sqrt(head.kernel.shape[0])
    head.kernel.assign(keras.random.uniform(head.kernel.shape, -bound, bound, dtype=head.kernel.dtype))
    head.bias.assign(keras.random.uniform(head.bias.shape, -bound, bound, dtype=head.bias.dtype))


def build_finetune_model(source: Source, num_classes: int, *, arch: str = "resnet50",
                         mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                         keep_source_normalization: bool = False) -> tuple[keras.Model, dict]:
    """The downstream classifier for `source` (`arch` applies to scratch sources without their own); returns
    (model, info).

    info: arch, mean/std used, the transferred weight names, and the re-initialised head. With
    `keep_source_normalization` a .keras source's own 'normalize' statistics replace `mean`/`std` (the official
    fine-tuning code uses ImageNet's for every source, hence the default)."""
    state_dict, normalization = None, None
    if source.kind == "scratch" and source.arch:
        arch = source.arch
    if source.kind != "scratch":
        arch, state_dict, normalization = load_source(source)
    elif arch not in ARCHS:
        raise SourceError(f"unknown arch {arch!r}; valid: {', '.join(ARCHS)}")
    if keep_source_normalization and normalization is not None:
        mean, std = normalization
    model = build_transfer_classifier(arch, num_classes, mean=mean, std=std)
    head = HEADS[arch]
    transferred = []
    if state_dict is not None:
        net = network_of(model)
        try:
            reference_nets.load_torchvision_state_dict(net, state_dict, strict=True, skip=(head,))
        except ValueError as e:
            raise SourceError(f"{source.path}: {e}") from None
        transferred = sorted(k for k in reference_nets.to_torchvision_state_dict(net) if not k.startswith(f"{head}."))
    reinitialise_head(model, arch)
    info = {"arch": arch, "mean": [float(v) for v in mean], "std": [float(v) for v in std],
            "transferred_tensors": len(transferred), "head": head, "head_shape": list(
                network_of(model).get_layer(head).kernel.shape),
            "source_normalization": ({"mean": list(normalization[0]), "std": list(normalization[1])}
                                     if normalization else None)}
    return model, info
