"""The real-photo cleaning rules (each at its threshold), normalisation and ratio plots (seed 002, ch. 3)."""

import numpy as np
import pytest

from tfsynth.cleaning import filters as f
from tfsynth.cleaning import normalise as n
from tfsynth.cleaning.plots import plot_ratio_distributions

CFG = f.FilterConfig()


def _det(mask=None, roi=(0, 0, 200, 200), label="car", score=0.9, shape=(300, 300)):
    if mask is None:
        mask = np.zeros(shape, bool)
        mask[roi[0]:roi[2], roi[1]:roi[3]] = True
    return f.Detection(label, score, roi, mask)


COLOUR = np.random.default_rng(0).integers(0, 256, (300, 300, 3)).astype(np.uint8)


# -- each rule at its threshold -------------------------------------------------------------------------------


def test_label_rule():
    assert f.label_ok(_det(label="car"), CFG) and f.label_ok(_det(label="truck"), CFG)
    assert not f.label_ok(_det(label="bus"), CFG) and not f.label_ok(_det(label="Car"), CFG)
    assert f.label_ok(_det(label="bus"), f.FilterConfig(labels=("bus",)))


def test_confidence_rule_keeps_exactly_the_threshold():
    assert f.confidence_ok(_det(score=0.7), CFG)
    assert f.confidence_ok(_det(score=float(np.float32(0.7))), CFG)  # a float32 score of 0.7 from the detector
    assert not f.confidence_ok(_det(score=float(np.nextafter(np.float32(0.7), np.float32(0)))), CFG)
    assert not f.confidence_ok(_det(score=0.69), CFG) and f.confidence_ok(_det(score=1.0), CFG)


def test_bbox_size_rule_uses_the_square_root_of_the_area():
    assert f.bbox_size_ok(_det(roi=(0, 0, 128, 128)), CFG)
    assert not f.bbox_size_ok(_det(roi=(0, 0, 127, 128)), CFG)  # sqrt(16256) = 127.5
    assert f.bbox_size_ok(_det(roi=(0, 0, 64, 256)), CFG)  # 64 px high but sqrt(area) = 128: kept
    assert not f.bbox_size_ok(_det(roi=(0, 0, 100, 160)), CFG)  # sqrt(16000) = 126.5


def test_mask_fill_rule_against_the_predicted_box():
    mask = np.zeros((300, 300), bool)
    mask[0:100, 0:100] = True  # 10,000 px
    assert f.mask_fill_ok(_det(mask=mask, roi=(0, 0, 100, 200)), CFG)  # exactly 0.5
    mask[0, 0] = False
    assert not f.mask_fill_ok(_det(mask=mask, roi=(0, 0, 100, 200)), CFG)  # 9,999 / 20,000
    assert f.mask_fill(_det(mask=mask, roi=(0, 0, 0, 10))) == 0.0


def test_colour_rule():
    grey = np.full((50, 50), 120, np.uint8)
    assert not f.is_colour(grey, CFG) and not f.is_colour(grey[..., None], CFG)
    assert not f.is_colour(np.repeat(grey[..., None], 3, axis=-1), CFG)
    image = np.repeat(grey[..., None], 3, axis=-1).astype(np.int32)
    image[..., 0] += 2  # spread exactly 2 = grey_tolerance: still grey (JPEG noise on a grey photo)
    assert f.channel_spread(image) == 2.0 and not f.is_colour(image, CFG)
    image[:25, :, 0] += 1  # mean spread 2.5
    assert f.is_colour(image, CFG)
    assert f.is_colour(COLOUR, CFG)


def test_occlusion_rule_counts_connected_components():
    mask = np.zeros((20, 20), bool)
    mask[2:8, 2:8] = True
    assert f.occlusion_ok(_det(mask=mask), CFG)
    mask[8, 8] = True  # touches the block diagonally only
    assert f.component_count(mask, 8) == 1 and f.occlusion_ok(_det(mask=mask), CFG)
    assert f.component_count(mask, 4) == 2 and not f.occlusion_ok(_det(mask=mask), f.FilterConfig(connectivity=4))
    mask[15:18, 15:18] = True
    assert not f.occlusion_ok(_det(mask=mask), CFG)


def test_truncation_rule_at_a_third_of_a_two_percent_strip():
    # 100 x 300 photo: top/bottom strips round(0.02 * 100) = 2 rows x 300 = 600 px,
    # left/right strips round(0.02 * 300) = 6 columns x 100 = 600 px; a third = 200 px.
    for side in ("top", "bottom", "left", "right"):
        mask = np.zeros((100, 300), bool)
        mask[40:60, 100:200] = True  # the car, away from the borders
        if side in ("top", "bottom"):
            rows = slice(0, 2) if side == "top" else slice(98, 100)
            mask[rows, 100:200] = True  # 200 px = exactly a third: kept
        else:
            cols = slice(0, 6) if side == "left" else slice(294, 300)
            mask[30:63, cols] = True
            mask[63, cols.start:cols.start + 2] = True  # 33 * 6 + 2 = 200 px
        coverage = f.border_coverage(mask)
        assert coverage[side] == pytest.approx(1 / 3)
        assert f.truncation_ok(_det(mask=mask, shape=mask.shape), CFG), side
        if side in ("top", "bottom"):
            mask[rows.start, 99] = True
        else:
            mask[64, cols.start] = True
        assert not f.truncation_ok(_det(mask=mask, shape=mask.shape), CFG), side
    assert f.border_coverage(np.ones((10, 10), bool)) == {"top": 1.0, "bottom": 1.0, "left": 1.0, "right": 1.0}


def test_rules_count_each_rejection_once_by_its_first_failing_rule():
    good = _det(roi=(50, 50, 250, 250))
    occluded_mask = good.mask.copy()
    occluded_mask[140:160, :] = False
    truncated_mask = np.zeros((300, 300), bool)
    truncated_mask[0:200, 50:250] = True
    detections = [good, _det(roi=(50, 50, 250, 250), label="person"),
                  _det(roi=(50, 50, 250, 250), label="person", score=0.1),  # fails two: counted as label
                  _det(roi=(50, 50, 250, 250), score=0.5), _det(roi=(0, 0, 100, 100)),
                  f.Detection("car", 0.9, (50, 50, 250, 250), np.pad(np.ones((100, 100), bool), 100)),  # fill 1/4
                  f.Detection("truck", 0.9, (50, 50, 250, 250), occluded_mask),
                  f.Detection("car", 0.9, (0, 50, 200, 250), truncated_mask)]
    report = f.FilterReport()
    kept = f.filter_detections(COLOUR, detections, CFG, report)
    assert kept == [good]
    assert dict(report.rejected) == {"label": 2, "confidence": 1, "bbox_size": 1, "mask_fill": 1, "colour": 0,
                                     "occlusion": 1, "truncation": 1}
    assert report.detections == 8 and report.accepted == 1 and report.after_first_pass == 3 and report.images == 1
    grey_report = f.FilterReport()
    assert f.filter_detections(COLOUR.mean(axis=-1).astype(np.uint8), [good], CFG, grey_report) == []
    assert grey_report.rejected["colour"] == 1
    total = f.FilterReport.from_dict(report.as_dict()).merge(grey_report)
    assert total.detections == 9 and total.rejected["colour"] == 1 and total.images == 2


def test_detections_from_a_detect_result():
    masks = np.zeros((40, 50, 2), bool)
    masks[5:10, 5:10, 0] = True
    result = {"rois": np.array([[5, 5, 10, 10], [0, 0, 4, 4]]), "class_ids": np.array([3, 8]),
              "scores": np.array([0.9, 0.8], np.float32), "masks": masks}
    names = ["BG", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck"]
    dets = f.detections_from_result(result, names)
    assert [(d.label, d.index) for d in dets] == [("car", 0), ("truck", 1)] and dets[0].mask.sum() == 25
    with pytest.raises(ValueError, match="inconsistent"):
        f.detections_from_result({**result, "scores": np.array([0.9])}, names)


# -- normalisation --------------------------------------------------------------------------------------------


def test_ratio_counts_any_nonzero_alpha_as_car():
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[0, :3, 3] = [255, 1, 128]  # partially transparent pixels count as car
    assert n.car_to_frame_ratio(rgba) == 3 / 17
    assert n.car_to_frame_ratio(rgba[..., 3]) == 3 / 17 and n.car_to_frame_ratio(rgba[..., 3:]) == 3 / 17
    assert n.car_to_frame_ratio(np.ones((2, 2))) == np.inf
    with pytest.raises(ValueError, match="shape"):
        n.car_to_frame_ratio(np.zeros((2, 2, 3)))


def test_segmentation_crop_zeroes_the_background_and_colour_correction():
    image = np.zeros((10, 12, 3), np.uint8)
    image[..., 1] = 200
    image[3, 3] = 0  # a black car pixel
    mask = np.zeros((10, 12), bool)
    mask[2:6, 2:8] = True
    rgba = n.segmentation_rgba(image, mask, (1, 1, 7, 9))
    assert rgba.shape == (6, 8, 4)
    np.testing.assert_array_equal(rgba[..., 3] > 0, mask[1:7, 1:9])
    assert not rgba[~mask[1:7, 1:9]].any()
    corrected = n.colour_correct(rgba)
    np.testing.assert_array_equal(corrected[2, 2], [1, 1, 1, 255])  # the black car pixel
    assert not corrected[0, 0].any()  # background stays (0, 0, 0, 0)
    np.testing.assert_array_equal(corrected[1, 1], [0, 200, 0, 255])


def test_pad_to_square_gives_the_odd_pixel_to_a_seeded_random_side():
    rgba = np.full((3, 6, 4), 255, np.uint8)
    sides = set()
    for seed in range(20):
        square = n.pad_to_square(rgba, np.random.default_rng(seed))
        assert square.shape == (6, 6, 4)
        rows = np.flatnonzero(square[:, 0, 3])
        assert len(rows) == 3 and rows[-1] - rows[0] == 2
        sides.add(int(rows[0]))
        np.testing.assert_array_equal(square, n.pad_to_square(rgba, np.random.default_rng(seed)))
    assert sides == {1, 2}  # 3 rows of padding: (1, 2) or (2, 1)
    assert n.pad_to_square(np.zeros((7, 4, 4), np.uint8), np.random.default_rng(0)).shape == (7, 7, 4)


def test_pad_to_ratio_solves_figure_3_13():
    square = np.zeros((10, 10, 4), np.uint8)
    square[:5, :, 3] = 255  # a = 50 car pixels in a 10 x 10 square: ratio 1
    # S = sqrt(50 * 1.2 / 0.2) = 17.32 -> 7 pixels of padding -> 17 x 17, ratio 50 / 239
    assert n.padding_for_ratio(10, 50, 0.2) == 7
    out = n.pad_to_ratio(square, 0.2, np.random.default_rng(0))
    assert out.shape == (17, 17, 4) and n.car_to_frame_ratio(out) == 50 / 239
    assert np.count_nonzero(out[..., 3]) == 50
    small = n.pad_to_ratio(out, 0.5, np.random.default_rng(0))  # already below 0.5: unchanged
    np.testing.assert_array_equal(small, out)


def test_fitted_normal_and_normalised_ratios_match_the_synthetic_distribution():
    rng = np.random.default_rng(0)
    synthetic = []
    for _ in range(300):  # "synthetic renders": 64 x 64 alpha maps with a car of ratio around 0.2
        side = int(rng.integers(24, 31))
        alpha = np.zeros((64, 64), np.uint8)
        alpha[10:10 + side, 5:5 + side] = rng.integers(1, 256)
        synthetic.append(alpha)
    target = n.fit_ratio_normal(synthetic)
    ratios = np.array([n.car_to_frame_ratio(a) for a in synthetic])
    assert (target.mean, target.std, target.count) == (pytest.approx(ratios.mean()), pytest.approx(ratios.std()), 300)
    # "real segmentations": large cars filling most of their box (ratios >> the synthetic ones)
    before, after = [], []
    for i in range(300):
        h, w = int(rng.integers(130, 260)), int(rng.integers(130, 260))
        image = rng.integers(0, 256, (h + 20, w + 20, 3)).astype(np.uint8)
        mask = np.zeros((h + 20, w + 20), bool)
        yy, xx = np.mgrid[0:h, 0:w]
        mask[10:10 + h, 10:10 + w] = ((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2 <= 1
        out = n.normalise_segmentation(image, mask, (10, 10, 10 + h, 10 + w), target, np.random.default_rng(i))
        assert out.rgba.shape[0] == out.rgba.shape[1] and out.rgba.dtype == np.uint8
        assert np.count_nonzero(out.rgba[..., 3]) == mask.sum()
        before.append(n.car_to_frame_ratio(n.segmentation_rgba(image, mask, (10, 10, 10 + h, 10 + w))))
        after.append(out.ratio)
        assert abs(out.ratio - out.target_ratio) < 0.01
    assert min(before) > 2  # ellipses fill ~79 % of their box
    assert np.mean(after) == pytest.approx(target.mean, abs=0.01)
    assert np.std(after) == pytest.approx(target.std, rel=0.25)


def test_ratio_normal_draws_are_positive_and_seeded():
    normal = n.RatioNormal(0.05, 0.1)
    draws = n.sampled_ratios(normal, 500, seed=3)
    assert draws.min() > 0 and np.array_equal(draws, n.sampled_ratios(normal, 500, seed=3))
    with pytest.raises(ValueError, match="mean > 0"):
        n.RatioNormal(-0.1, 0.1)


def test_ratio_plots_are_written(tmp_path):
    rng = np.random.default_rng(0)
    path = plot_ratio_distributions({"real": list(rng.gamma(2, 1, 200)) + [np.inf],
                                     "synthetic": rng.normal(0.2, 0.02, 200)},
                                    str(tmp_path / "ratios.png"), "Figure 3.10", normal=(0.2, 0.02))
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
