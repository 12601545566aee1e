"""Head replacement: backbone weights really transferred (trainable and batch-norm statistics), head newly
initialised for the downstream classes; sources from train.pretrain's files and from reference-net weight files."""
import json
import math

import keras
import numpy as np
import pytest

from tfsynth.models import reference_nets as rn
from tfsynth.models.classifier import backbone_from_classifier, build_classifier
from tfsynth.transfer.heads import (IMAGENET_MEAN, Source, SourceError, build_finetune_model, infer_arch,
                                    network_of)


def _perturbed_classifier(num_classes=4, arch="resnet18", seed=7):
    """A 'pre-trained' classifier: random weights and non-trivial batch-norm statistics (as after training)."""
    keras.utils.set_random_seed(seed)
    model = build_classifier(num_classes, arch=arch)
    rng = np.random.default_rng(seed)
    for layer in network_of(model).layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.1, layer.moving_mean.shape).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, layer.moving_variance.shape).astype(np.float32))
    return model


@pytest.fixture(scope="module")
def pretrain_run(tmp_path_factory):
    """A workdir laid out as train.pretrain leaves it: backbone.keras, model.keras, config.json."""
    run = tmp_path_factory.mktemp("pretrain-run")
    model = _perturbed_classifier()
    model.save(run / "model.keras")
    backbone_from_classifier(model).save(run / "backbone.keras")
    (run / "config.json").write_text(json.dumps({"data": "fractal_db/tiny", "arch": "resnet18"}))
    return run, rn.to_torchvision_state_dict(network_of(model))


@pytest.mark.parametrize("filename", ["backbone.keras", "model.keras"])
def test_backbone_weights_transferred_and_head_reinitialised(pretrain_run, filename):
    run, source_sd = pretrain_run
    source = Source("backbone", path=str(run / filename))
    assert source.label == "fractal_db/tiny"  # from the pre-training run's config.json
    keras.utils.set_random_seed(123)
    model, info = build_finetune_model(source, 10)
    assert info["arch"] == "resnet18" and info["head"] == "fc" and info["head_shape"] == [512, 10]
    target_sd = rn.to_torchvision_state_dict(network_of(model))
    body = [k for k in source_sd if not k.startswith("fc.")]
    assert info["transferred_tensors"] == len(body) == len(target_sd) - 2
    assert any(k.endswith("running_var") for k in body)
    for key in body:
        np.testing.assert_array_equal(target_sd[key], source_sd[key], err_msg=key)
    # The head: new shape, PyTorch nn.Linear init U(-1/sqrt(512), 1/sqrt(512)), not any source weight.
    kernel, bias = target_sd["fc.weight"], target_sd["fc.bias"]
    assert kernel.shape == (10, 512) and bias.shape == (10,)
    bound = 1 / math.sqrt(512)
    assert np.abs(kernel).max() <= bound and np.abs(bias).max() <= bound and kernel.std() > bound / 3
    assert not np.allclose(kernel[:4], source_sd["fc.weight"])
    # The fine-tuning model normalises with ImageNet statistics (official fine-tuning code) ...
    assert info["mean"] == pytest.approx(list(IMAGENET_MEAN))
    assert info["source_normalization"] == {"mean": [0.2, 0.2, 0.2], "std": [0.5, 0.5, 0.5]}
    # ... or, on request, with the source's own.
    kept, kept_info = build_finetune_model(source, 10, keep_source_normalization=True)
    assert kept_info["mean"] == pytest.approx([0.2] * 3) and kept_info["std"] == pytest.approx([0.5] * 3)
    images = np.full((1, 32, 32, 3), 255 * 0.2, np.float32)
    assert np.abs(kept.get_layer("normalize")(images).numpy()).max() < 1e-5


def test_head_initialisation_follows_the_seed():
    source = Source("scratch", arch="resnet18")
    heads = []
    for seed in (1, 1, 2):
        keras.utils.set_random_seed(seed)
        model, _ = build_finetune_model(source, 5)
        heads.append(network_of(model).get_layer("fc").kernel.numpy())
    np.testing.assert_array_equal(heads[0], heads[1])
    assert not np.array_equal(heads[0], heads[2])


def test_scratch_and_reference_sources(tmp_path):
    model, info = build_finetune_model(Source("scratch", arch="resnet18"), 3)
    assert info["transferred_tensors"] == 0 and info["head_shape"] == [512, 3]
    assert Source("scratch").label == "scratch"

    keras.utils.set_random_seed(5)
    imagenet = rn.alexnet(num_classes=1000)
    sd = rn.to_torchvision_state_dict(imagenet)
    weights = tmp_path / "alexnet_imagenet.npz"
    np.savez(weights, **sd)
    source = Source("reference", path=str(weights), arch="alexnet")
    assert source.label == "alexnet:alexnet_imagenet"
    model, info = build_finetune_model(source, 10)
    target = rn.to_torchvision_state_dict(network_of(model))
    assert info["head"] == "classifier.6" and target["classifier.6.weight"].shape == (10, 4096)
    for key in sd:
        if not key.startswith("classifier.6."):
            np.testing.assert_array_equal(target[key], sd[key], err_msg=key)
    assert np.abs(target["classifier.6.weight"]).max() <= 1 / 64  # nn.Linear init, 1/sqrt(4096)

    with pytest.raises(SourceError, match=r"alexnet_imagenet\.npz hold alexnet weights, but --reference is vgg16"):
        build_finetune_model(Source("reference", path=str(weights), arch="vgg16"), 10)
    broken = tmp_path / "broken.npz"
    np.savez(broken, **{k: v for k, v in sd.items() if k != "features.8.weight"})
    with pytest.raises(SourceError, match=r"broken\.npz.*features\.8\.weight"):
        build_finetune_model(Source("reference", path=str(broken), arch="alexnet"), 10)
    with pytest.raises(SourceError, match=r"--backbone file .*nothing\.keras does not exist"):
        build_finetune_model(Source("backbone", path=str(tmp_path / "nothing.keras")), 10)
    with pytest.raises(SourceError, match="needs a file path"):
        Source("reference", arch="alexnet")


def test_infer_arch_from_weight_names():
    for arch in ("resnet18", "resnet50"):
        model = build_classifier(2, arch=arch)
        assert infer_arch(rn.to_torchvision_state_dict(network_of(model))) == arch
    assert infer_arch([f"features.{i}.weight" for i in (0, 3, 6, 8, 10)]) == "alexnet"
    with pytest.raises(SourceError, match="cannot tell the architecture"):
        infer_arch(["encoder.0.weight"])
