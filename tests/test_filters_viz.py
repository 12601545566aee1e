"""First-layer filter grids (shape, scaling, layout), side-by-side PNG, TensorBoard images, activation
maximisation, and the eval.filters job on saved models."""
import keras
import numpy as np
import pytest

from tfsynth.models.classifier import backbone_from_classifier, build_classifier
from tfsynth.visualize import filters as viz


def test_filter_grid_shape_layout_and_scaling():
    kernel = np.random.default_rng(0).normal(size=(7, 7, 3, 64))
    grid = viz.filter_grid(kernel)  # 8 x 8 filters, 7 px enlarged x5 to 35 px, 1 px gaps
    assert grid.dtype == np.uint8 and grid.shape == (8 * 36 - 1, 8 * 36 - 1, 3)
    cell = grid[36:71, 72:107]  # filter 10 (row 1, column 2)
    expected = kernel[..., 10]
    expected = (expected - expected.min()) / (expected.max() - expected.min())
    np.testing.assert_array_equal(cell[::5, ::5], np.rint(expected * 255).astype(np.uint8))
    assert cell.min() == 0 and cell.max() == 255  # scaled on its own
    assert np.all(grid[35, :] == 255) and np.all(grid[:, 35] == 255)  # gaps

    weak = kernel.copy()
    weak[..., 0] *= 0.01
    together = viz.filter_grid(weak, scale="all", columns=16, cell=7)
    assert together.shape == (4 * 8 - 1, 16 * 8 - 1, 3)
    assert np.ptp(together[:7, :7].astype(int)) < 10 < np.ptp(together[:7, 8:15].astype(int))
    with pytest.raises(ValueError, match=r"\(kh, kw, 3, n\)"):
        viz.filter_grid(np.zeros((3, 3, 1, 4)))


def test_first_conv_is_found_at_any_depth_and_side_by_side(tmp_path):
    from tfsynth.models.reference_nets import alexnet
    from tfsynth.transfer.heads import build_transfer_classifier

    resnet = build_classifier(4, arch="resnet18")
    assert viz.first_conv(resnet).name == "conv1"
    assert viz.model_filter_grid(backbone_from_classifier(resnet)).shape == (8 * 36 - 1,) * 2 + (3,)
    net = alexnet(num_classes=3)
    assert viz.first_conv(net).name == "features.0"
    assert viz.model_filter_grid(net).shape == (8 * 34 - 1,) * 2 + (3,)  # 11 px x3 = 33 px cells
    assert viz.first_conv(build_transfer_classifier("alexnet", 3)).kernel.shape == (11, 11, 3, 64)
    viz.side_by_side({"a": viz.model_filter_grid(resnet), "b": viz.model_filter_grid(net)}, str(tmp_path / "s.png"))
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="no convolution over 3 input channels"):
        viz.first_conv(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))


def test_activation_maximisation_raises_the_unit_activation():
    keras.utils.set_random_seed(0)
    model = build_classifier(4, arch="resnet18")
    units = [0, 5]
    start = viz.activation_maximization(model, "layer2.1.out", units, size=32, steps=0, seed=3)
    images = viz.activation_maximization(model, "layer2.1.out", units, size=32, steps=12, blur_every=4, seed=3)
    assert images.shape == (2, 32, 32, 3) and images.dtype == np.uint8
    extractor = viz._pixel_model(model, "layer2.1.out")
    before = extractor(start.astype(np.float32)).numpy().mean(axis=(1, 2))
    after = extractor(images.astype(np.float32)).numpy().mean(axis=(1, 2))
    for i, unit in enumerate(units):
        assert after[i, unit] > before[i, unit]
    with pytest.raises(ValueError, match="has 128 channels"):
        viz.activation_maximization(model, "layer2.1.out", [128], steps=1)
    with pytest.raises(ValueError, match="no layer 'layer9'"):
        viz.activation_maximization(model, "layer9", [0], steps=1)


def test_eval_filters_job(tmp_path):
    from tensorboard.backend.event_processing import event_accumulator

    from eval import filters as job

    paths = []
    for name, seed in (("first", 1), ("second", 2)):
        keras.utils.set_random_seed(seed)
        path = tmp_path / name / "backbone.keras"
        path.parent.mkdir()
        backbone_from_classifier(build_classifier(4, arch="resnet18")).save(path)
        paths.append(path)
    out = tmp_path / "out"
    result = job.main(["--model", f"a={paths[0]}", "--model", str(paths[1]), "--out", str(out),
                       "--actmax_layer", "layer1.0.out", "--units", "0,1", "--actmax_size", "24",
                       "--actmax_steps", "2"])
    assert set(result["grids"]) == {"a", "second"}
    for name in ("filters_a.png", "filters_second.png", "filters.png", "actmax_a.png", "actmax_second.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name
    assert result["actmax"]["a"].shape == (24, 48, 3)
    acc = event_accumulator.EventAccumulator(str(out / "logs"), size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    assert {"filters/a", "filters/second", "actmax/layer1.0.out/a"} <= set(acc.Tags()["tensors"])
    with pytest.raises(ValueError, match="does not exist"):
        job.main(["--model", str(tmp_path / "none.keras"), "--out", str(out)])
