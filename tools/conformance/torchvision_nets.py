"""torchvision's own ResNet-18/-50, AlexNet, VGG-16 and FCN-ResNet-50 (aux head) on seeded weights and inputs.

Run with a Python that has torch + torchvision (a scratch venv outside the repo; see README.md here):

    /work/scratch/torchenv/bin/python tools/conformance/torchvision_nets.py [--nets resnet18,resnet50,...]

Writes tests/data/conformance/torchvision_<net>.npz (inputs and outputs, NCHW as torch gives them) and
torchvision.json (torch/torchvision versions, seeds, shapes, weight checksums). Weights are not stored: both
sides regenerate them with tools/conformance/seeded.py from the same seed.
"""
from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from tools.conformance._common import FIXTURES, weights_checksum, write_json, write_npz  # noqa: E402
from tools.conformance.seeded import seeded_inputs, seeded_state_dict  # noqa: E402

# net -> (weight seed, input seed, input NCHW shape, per-image features kept for image 0)
SPECS = {
    # 33 x 47: odd, non-square sizes exercise the stride-2 padding and any H/W mix-up.
    "resnet18": (18, 1018, (2, 3, 33, 47)),
    "resnet50": (50, 1050, (2, 3, 33, 47)),
    # 127 x 151: the last feature map (AlexNet 2x3, VGG 3x4) is pooled to 6x6 / 7x7 with overlapping bins.
    "alexnet": (61, 1061, (1, 3, 127, 151)),
    "vgg16": (16, 1016, (1, 3, 127, 151)),
    "fcn_resnet50": (35, 1035, (1, 3, 33, 47)),
}


def _import_torchvision():
    """torchvision from the package registry is built against a CUDA torch, so its C++ ops (nms, roi_align...)
    do not load next to the CPU torch wheel and its op registrations fail at import. The models compared here
    are plain Python modules that use none of those ops: skip the two registration modules."""
    for name in ("torchvision._meta_registrations", "torchvision._autograd_registrations"):
        sys.modules.setdefault(name, types.ModuleType(name))
    import torchvision
    return torchvision


def build(net: str):
    _import_torchvision()
    from torchvision import models
    from torchvision.models import segmentation
    if net == "fcn_resnet50":
        return segmentation.fcn_resnet50(weights=None, weights_backbone=None, num_classes=21, aux_loss=True)
    return getattr(models, net)(weights=None)


def run(net: str):
    import torch
    torch.manual_seed(0)  # only the construction-time init, overwritten below
    seed, input_seed, shape = SPECS[net]
    model = build(net).eval()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    sd = seeded_state_dict(shapes, seed)
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in sd.items()}, strict=True)
    x = seeded_inputs(shape, input_seed)
    arrays = {"input": x}
    features = {}
    if net.startswith("resnet"):
        for stage in range(1, 5):
            for b, block in enumerate(getattr(model, f"layer{stage}")):
                name = f"layer{stage}.{b}.out"
                block.register_forward_hook(lambda m, i, o, name=name: features.__setitem__(name, o[:1].numpy()))
    with torch.no_grad():
        out = model(torch.from_numpy(x))
    if isinstance(out, dict):
        for k, v in out.items():
            arrays[k] = v.numpy()
    else:
        arrays["logits"] = out.numpy()
    for name, value in features.items():
        arrays[f"features/{name}"] = value
    write_npz(f"torchvision_{net}", arrays)
    return {"weight_seed": seed, "input_seed": input_seed, "input_shape": list(shape),
            "weights_checksum": weights_checksum(sd),
            "state_dict_shapes": {k: "x".join(map(str, v)) for k, v in sorted(shapes.items())},
            "outputs": {k: list(v.shape) for k, v in arrays.items() if k != "input"},
            "max_abs_output": {k: float(np.abs(v).max()) for k, v in arrays.items() if k != "input"}}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nets", default=",".join(SPECS), help=f"comma-separated subset of {','.join(SPECS)}")
    args = p.parse_args(argv)
    nets = [n for n in args.nets.split(",") if n]
    bad = [n for n in nets if n not in SPECS]
    if bad:
        p.error(f"--nets: unknown {bad}; choose from {sorted(SPECS)}")
    torchvision = _import_torchvision()
    import torch
    torch.set_num_threads(2)
    meta_path = FIXTURES / "torchvision.json"
    record = json.loads(meta_path.read_text()) if meta_path.exists() else {"nets": {}}
    for net in nets:
        record["nets"][net] = run(net)
    record.update({"reference": "torchvision (models built with weights=None, eval mode, float32, CPU)",
                   "torch": torch.__version__, "torchvision": torchvision.__version__,
                   "numpy": np.__version__, "command": "tools/conformance/torchvision_nets.py"})
    write_json("torchvision", record)


if __name__ == "__main__":
    main()
