"""Keras 3 ResNets that match torchvision's ``resnet18/34/50/101/152`` (v1.5).

Layer names are torchvision ``state_dict`` module paths (``conv1``, ``layer1.0.bn2``,
``layer2.0.downsample.0``, ``fc``...) so checkpoints map one-to-one and per-block
features can be read from ``layerS.B.out`` (the block's output ReLU).
Helper layers torchvision has no module for use suffixed names (``conv1_pad``,
``layer2.0.conv2_pad``, ``layer1.0.add``, ``<conv>_subsample`` for a strided dilated
conv, ...). Inputs are expected already
normalised; no preprocessing happens here. Channels-last only.
"""
import math

import numpy as np
import keras
from keras import layers

__all__ = [
    "resnet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "load_torchvision_state_dict", "to_torchvision_state_dict",
]

# depth -> (bottleneck?, blocks per stage)
_CONFIGS = {
    18: (False, (2, 2, 2, 2)),
    34: (False, (3, 4, 6, 3)),
    50: (True, (3, 4, 6, 3)),
    101: (True, (3, 4, 23, 3)),
    152: (True, (3, 8, 36, 3)),
}

_BN_EPS = 1e-5
_BN_MOMENTUM = 0.9  # Keras keeps `momentum` of the old value: PyTorch momentum 0.1


def _conv(x, filters, kernel, stride, dilation, name):
    """Bias-free conv with PyTorch padding semantics (padding = dilation * (k - 1) / 2)."""
    # torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu"), not truncated.
    init = keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")
    pad = dilation * (kernel - 1) // 2
    if stride > 1 and pad:
        # Keras 'same' pads asymmetrically (0 before, 1 after) for stride 2 on even
        # sizes; PyTorch pads symmetrically, so pad explicitly and use 'valid'.
        x = layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
    # Odd kernels at stride 1: 'same' == symmetric padding == PyTorch.
    padding = "same" if stride == 1 else "valid"
    # Keras refuses stride > 1 together with dilation > 1 (torchvision hits it when a
    # non-dilated stage follows a dilated one). A strided conv equals the stride-1
    # conv sampled every `stride` pixels, which a 1x1 max-pool does exactly.
    conv_stride = 1 if dilation > 1 else stride
    x = layers.Conv2D(filters, kernel, strides=conv_stride, padding=padding,
                      dilation_rate=dilation, use_bias=False,
                      kernel_initializer=init, name=name)(x)
    if conv_stride != stride:
        x = layers.MaxPooling2D(1, strides=stride, name=f"{name}_subsample")(x)
    return x


def _bn(x, name, zero_gamma=False):
    return layers.BatchNormalization(
        axis=-1, momentum=_BN_MOMENTUM, epsilon=_BN_EPS,
        gamma_initializer="zeros" if zero_gamma else "ones", name=name)(x)


def _block(x, planes, stride, dilation, bottleneck, prefix, zero_init_residual):
    """torchvision BasicBlock / Bottleneck (v1.5: stride on the 3x3 conv)."""
    out_ch = planes * (4 if bottleneck else 1)
    identity = x
    if bottleneck:
        out = _conv(x, planes, 1, 1, 1, f"{prefix}.conv1")
        out = layers.ReLU(name=f"{prefix}.relu1")(_bn(out, f"{prefix}.bn1"))
        out = _conv(out, planes, 3, stride, dilation, f"{prefix}.conv2")
        out = layers.ReLU(name=f"{prefix}.relu2")(_bn(out, f"{prefix}.bn2"))
        out = _conv(out, out_ch, 1, 1, 1, f"{prefix}.conv3")
        out = _bn(out, f"{prefix}.bn3", zero_gamma=zero_init_residual)
    else:
        out = _conv(x, planes, 3, stride, dilation, f"{prefix}.conv1")
        out = layers.ReLU(name=f"{prefix}.relu1")(_bn(out, f"{prefix}.bn1"))
        out = _conv(out, planes, 3, 1, dilation, f"{prefix}.conv2")
        out = _bn(out, f"{prefix}.bn2", zero_gamma=zero_init_residual)
    if stride != 1 or x.shape[-1] != out_ch:
        identity = _conv(x, out_ch, 1, stride, 1, f"{prefix}.downsample.0")
        identity = _bn(identity, f"{prefix}.downsample.1")
    out = layers.Add(name=f"{prefix}.add")([out, identity])
    return layers.ReLU(name=f"{prefix}.out")(out)


def resnet(depth, num_classes=1000, include_top=True, input_shape=(None, None, 3),
           replace_stride_with_dilation=(False, False, False),
           zero_init_residual=False, name=None):
    """Build a torchvision-conformant ResNet.

    ``include_top=False`` returns the last feature map (before ``avgpool``).
    ``replace_stride_with_dilation`` applies to layer2, layer3, layer4 as in
    torchvision; ``(False, True, True)`` gives output stride 8.
    """
    if depth not in _CONFIGS:
        raise ValueError(f"depth must be one of {sorted(_CONFIGS)}, got {depth}")
    if len(replace_stride_with_dilation) != 3:
        raise ValueError("replace_stride_with_dilation must have 3 entries "
                         f"(layer2, layer3, layer4), got {replace_stride_with_dilation}")
    if keras.config.image_data_format() != "channels_last":
        raise ValueError("resnet() supports channels_last only")
    bottleneck, blocks = _CONFIGS[depth]
    if not bottleneck and any(replace_stride_with_dilation):
        # Same restriction as torchvision's BasicBlock.
        raise ValueError("replace_stride_with_dilation needs bottleneck blocks (resnet50/101/152); "
                         "torchvision's BasicBlock (resnet18/34) has no dilation either")

    inputs = keras.Input(shape=input_shape, name="input")
    x = _conv(inputs, 64, 7, 2, 1, "conv1")
    x = layers.ReLU(name="relu")(_bn(x, "bn1"))
    # PyTorch pads max-pool with -inf; after ReLU everything is >= 0, so zeros are equivalent.
    x = layers.ZeroPadding2D(1, name="maxpool_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="maxpool")(x)

    dilation = 1
    for stage, (planes, n) in enumerate(zip((64, 128, 256, 512), blocks)):
        stride = 1 if stage == 0 else 2
        prev_dilation = dilation
        if stage > 0 and replace_stride_with_dilation[stage - 1]:
            dilation *= stride
            stride = 1
        # As torchvision's _make_layer: only the first block carries the stride and
        # the dilation from before this stage; the rest use the new dilation.
        for b in range(n):
            x = _block(x, planes, stride if b == 0 else 1,
                       prev_dilation if b == 0 else dilation, bottleneck,
                       f"layer{stage + 1}.{b}", zero_init_residual)

    if include_top:
        x = layers.GlobalAveragePooling2D(name="avgpool")(x)
        # torchvision leaves nn.Linear at its default init: weight and bias both
        # U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        bound = 1.0 / math.sqrt(x.shape[-1])
        x = layers.Dense(num_classes,
                         kernel_initializer=keras.initializers.RandomUniform(-bound, bound),
                         bias_initializer=keras.initializers.RandomUniform(-bound, bound),
                         name="fc")(x)
    return keras.Model(inputs, x, name=name or f"resnet{depth}")


def resnet18(**kw):
    return resnet(18, **kw)


def resnet34(**kw):
    return resnet(34, **kw)


def resnet50(**kw):
    return resnet(50, **kw)


def resnet101(**kw):
    return resnet(101, **kw)


def resnet152(**kw):
    return resnet(152, **kw)


# --- torchvision state_dict mapping -------------------------------------------------

_BN_KEYS = ("weight", "bias", "running_mean", "running_var")  # Keras weight order


def torch_layout(model):
    """Yield (layer, [(torch_key, to_keras, to_torch)]) for every weighted layer."""
    def same(a):
        return a

    for layer in model.layers:
        n = layer.name
        if isinstance(layer, layers.Conv2D):
            # OIHW <-> HWIO
            yield layer, [(f"{n}.weight", lambda a: a.transpose(2, 3, 1, 0),
                           lambda a: a.transpose(3, 2, 0, 1))]
        elif isinstance(layer, layers.BatchNormalization):
            yield layer, [(f"{n}.{k}", same, same) for k in _BN_KEYS]
        elif isinstance(layer, layers.Dense):
            yield layer, [(f"{n}.weight", np.transpose, np.transpose),
                          (f"{n}.bias", same, same)]
        elif layer.weights:
            raise ValueError(f"don't know how to map layer {n!r} ({type(layer).__name__})")


def to_torchvision_state_dict(model):
    """Model weights as a torchvision-layout dict of numpy arrays (name -> array)."""
    sd = {}
    for layer, entries in torch_layout(model):
        for (key, _, to_torch), w in zip(entries, layer.get_weights()):
            sd[key] = np.ascontiguousarray(to_torch(w))
        if isinstance(layer, layers.BatchNormalization):
            # Present in every torchvision checkpoint; needed for strict torch loading.
            sd[f"{layer.name}.num_batches_tracked"] = np.array(0, dtype=np.int64)
    return sd


def plan_state_dict_load(layout, state_dict, strict=True, label=""):
    """Checks `state_dict` against `layout` ((layer, [(key, to_keras, to_torch)]) pairs) without assigning.

    Returns (pending, problems): the (variable, value) pairs to assign and the list of problems (missing /
    unexpected keys when `strict`, shape mismatches always). ``num_batches_tracked`` is optional and ignored.
    """
    pending, expected, shape_errors = [], set(), []
    for layer, entries in layout:
        if isinstance(layer, layers.BatchNormalization):
            expected.add(f"{layer.name}.num_batches_tracked")
        for (key, to_keras, to_torch), var in zip(entries, layer.weights):
            expected.add(key)
            if key not in state_dict:
                continue
            arr = np.asarray(state_dict[key])
            want = to_torch(np.empty(tuple(var.shape), np.uint8)).shape  # views only: cheap
            if arr.shape != want:
                shape_errors.append(f"{key}: got {arr.shape}, expected {want}")
                continue
            pending.append((var, to_keras(arr).astype(var.dtype)))

    required = {k for k in expected if not k.endswith(".num_batches_tracked")}
    missing = sorted(required - state_dict.keys())
    unexpected = sorted(state_dict.keys() - expected)
    problems = []
    if strict and missing:
        problems.append(f"missing {label}keys ({len(missing)}): {missing}")
    if strict and unexpected:
        problems.append(f"unexpected {label}keys ({len(unexpected)}): {unexpected}")
    if shape_errors:
        problems.append(f"shape mismatches ({len(shape_errors)}): {shape_errors}")
    return pending, problems


def load_torchvision_state_dict(model, state_dict, strict=True):
    """Load a torchvision state_dict (name -> numpy array) into ``model``.

    Raises ValueError listing every missing/unexpected key and shape mismatch;
    nothing is assigned unless all checks pass. ``num_batches_tracked`` is
    optional and ignored. ``strict=False`` tolerates missing/unexpected keys
    (e.g. ``fc.*`` for an ``include_top=False`` backbone) but not bad shapes.
    """
    pending, problems = plan_state_dict_load(torch_layout(model), state_dict, strict)
    if problems:
        raise ValueError(f"cannot load state_dict into {model.name!r}: " + "; ".join(problems))
    for var, value in pending:
        var.assign(value)
    return model
