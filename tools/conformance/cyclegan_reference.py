"""The CycleGAN reference's own ResNet-9-block generator, 70x70 PatchGAN and loss modules on seeded weights/inputs.

The reference is models/networks.py of junyanz/pytorch-CycleGAN-and-pix2pix, saved OUTSIDE the repository (its
code is never committed), run with a Python that has torch (see README.md here):

    /work/scratch/torchenv/bin/python tools/conformance/cyclegan_reference.py \
        --networks /work/scratch/cyclegan_ref/models/networks.py --commit <commit of that file>

Builds ``define_G(3, 3, 64, 'resnet_9blocks', norm='instance')`` and ``define_D(3, 64, 'basic', norm='instance')``,
loads weights drawn with tools/conformance/seeded.py, and runs them in training mode, the mode the reference
trains in (instance norm then normalises with each image's statistics: in the file's own eval mode, at the commit
compared, ``track_running_stats=True`` would switch to running statistics; later commits dropped that flag). Also
evaluates the reference's loss modules on the same tensors: ``GANLoss(use_lsgan=True)`` for real and fake targets
and ``nn.L1Loss`` (the cycle and identity terms). Writes tests/data/conformance/cyclegan.npz and cyclegan.json.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from tools.conformance._common import weights_checksum, write_json, write_npz  # noqa: E402
from tools.conformance.seeded import seeded_inputs, seeded_state_dict  # noqa: E402

G_SEED, D_SEED = 9, 70
G_INPUT = (1, 3, 40, 56)   # divisible by 4: the two stride-2 convs and transposed convs return the input size
D_INPUT = (2, 3, 70, 86)   # 70 x 70 (one receptive field) and a wider one: 6 x 6 and 6 x 8 score maps


def _load_networks(path: Path):
    spec = importlib.util.spec_from_file_location("reference_networks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _seed_module(torch, net, seed):
    """Seeded weights for every parameter; instance-norm running buffers (unused in training mode) stay as built."""
    sd = net.state_dict()
    shapes = {k: tuple(v.shape) for k, v in sd.items()
              if not k.endswith((".running_mean", ".running_var", ".num_batches_tracked"))}
    weights = seeded_state_dict(shapes, seed)
    missing, unexpected = net.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=False)
    assert not unexpected and all(k.endswith((".running_mean", ".running_var", ".num_batches_tracked"))
                                  for k in missing), (missing, unexpected)
    return weights, shapes


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--networks", required=True, help="path to the reference's models/networks.py (outside the repo)")
    p.add_argument("--commit", required=True, help="the reference commit that file comes from (recorded)")
    args = p.parse_args(argv)
    path = Path(args.networks)
    if not path.is_file():
        p.error(f"--networks: {path} is not a file")
    import torch
    torch.set_num_threads(2)
    torch.manual_seed(0)
    nets = _load_networks(path)
    with contextlib.redirect_stdout(io.StringIO()):  # init_weights prints; the seeded weights replace its init
        G = nets.define_G(3, 3, 64, "resnet_9blocks", norm="instance", use_dropout=False)
        D = nets.define_D(3, 64, "basic", norm="instance")
    g_weights, g_shapes = _seed_module(torch, G, G_SEED)
    d_weights, d_shapes = _seed_module(torch, D, D_SEED)
    G.train()
    D.train()
    x = seeded_inputs(G_INPUT, 1009)
    d_in = seeded_inputs(D_INPUT, 1070)
    gan, l1 = nets.GANLoss(use_lsgan=True), torch.nn.L1Loss()
    with torch.no_grad():
        g_out = G(torch.from_numpy(x))
        d_out = D(torch.from_numpy(d_in))
        arrays = {"g_input": x, "g_output": g_out.numpy(), "d_input": d_in, "d_output": d_out.numpy(),
                  "loss_gan_real": np.float32(gan(d_out, True).item()),
                  "loss_gan_fake": np.float32(gan(d_out, False).item()),
                  "loss_l1": np.float32(l1(g_out, torch.from_numpy(x)).item())}
    write_npz("cyclegan", arrays)
    write_json("cyclegan", {
        "reference": "junyanz/pytorch-CycleGAN-and-pix2pix models/networks.py: define_G(3, 3, 64, 'resnet_9blocks', "
                     "norm='instance'), define_D(3, 64, 'basic', norm='instance'), GANLoss(use_lsgan=True), "
                     "nn.L1Loss; training mode, float32, CPU",
        "commit": args.commit, "networks_py_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "torch": torch.__version__, "command": "tools/conformance/cyclegan_reference.py",
        "generator": {"weight_seed": G_SEED, "input_seed": 1009, "input_shape": list(G_INPUT),
                      "weights_checksum": weights_checksum(g_weights),
                      "state_dict_shapes": {k: "x".join(map(str, v)) for k, v in sorted(g_shapes.items())}},
        "discriminator": {"weight_seed": D_SEED, "input_seed": 1070, "input_shape": list(D_INPUT),
                          "weights_checksum": weights_checksum(d_weights),
                          "state_dict_shapes": {k: "x".join(map(str, v)) for k, v in sorted(d_shapes.items())}},
        "max_abs_output": {"g_output": float(np.abs(arrays["g_output"]).max()),
                           "d_output": float(np.abs(arrays["d_output"]).max())},
    })


if __name__ == "__main__":
    main()
