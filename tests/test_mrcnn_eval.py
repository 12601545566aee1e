"""mrcnn.utils evaluation (matterport's VOC-style AP on masks, hand-computed cases), NMS, resize, COCO mAP via
pycocotools, and mrcnn.visualize writing figures to files and TensorBoard without a notebook."""
import glob
import os

import numpy as np
import pytest

from mrcnn import utils, visualize


def _box_mask(boxes, shape=(20, 20)):
    masks = np.zeros(shape + (len(boxes),), dtype=bool)
    for i, (y1, x1, y2, x2) in enumerate(boxes):
        masks[y1:y2, x1:x2, i] = True
    return masks


def test_non_max_suppression_keeps_the_best_of_each_overlapping_group():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]])
    scores = np.array([0.8, 0.9, 0.5, 0.7])
    # IoU(0, 1) = 81 / 119 = 0.68; IoU(1, 3) = 72 / 118 = 0.61; IoU(0, 3) = 0.9; box 2 is apart.
    np.testing.assert_array_equal(utils.non_max_suppression(boxes, scores, 0.3), [1, 2])
    np.testing.assert_array_equal(utils.non_max_suppression(boxes, scores, 0.65), [1, 3, 2])
    assert utils.non_max_suppression(boxes, scores, 0.3).dtype == np.int32
    with pytest.raises(ValueError, match="non-empty"):
        utils.non_max_suppression(np.zeros((0, 4)), np.zeros(0), 0.3)


def test_compute_ap_hand_computed_case():
    # Two GT instances (class 1, class 2); three predictions, ranked by score:
    #   p_a (0.9) = GT0 exactly, class 1 -> TP;  p_b (0.8) on GT1 but class 1 -> FP;  p_c (0.7) = GT1, class 2 -> TP.
    gt_boxes = np.array([[0, 0, 10, 10], [10, 10, 20, 20]])
    gt_class_ids = np.array([1, 2])
    gt_masks = _box_mask(gt_boxes)
    pred_boxes = np.array([[10, 10, 20, 20], [0, 0, 10, 10], [10, 10, 20, 20]])  # given in scrambled order
    pred_class_ids = np.array([1, 1, 2])
    pred_scores = np.array([0.8, 0.9, 0.7])
    pred_masks = _box_mask(pred_boxes)
    gt_match, pred_match, overlaps = utils.compute_matches(gt_boxes, gt_class_ids, gt_masks, pred_boxes,
                                                           pred_class_ids, pred_scores, pred_masks)
    np.testing.assert_array_equal(pred_match, [0, -1, 1])  # sorted: p_a, p_b, p_c
    np.testing.assert_array_equal(gt_match, [0, 2])
    np.testing.assert_array_equal(overlaps, [[1, 0], [0, 1], [0, 1]])
    ap, precisions, recalls, _ = utils.compute_ap(gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids,
                                                  pred_scores, pred_masks)
    # precision/recall after each prediction: (1, .5), (.5, .5), (2/3, 1); monotone envelope 1, 2/3, 2/3.
    # AP = 0.5 * 1 + 0.5 * 2/3 = 5/6.
    assert ap == pytest.approx(5 / 6)
    np.testing.assert_allclose(precisions, [1, 1, 2 / 3, 2 / 3, 0])
    np.testing.assert_allclose(recalls, [0, 0.5, 0.5, 1, 1])


def test_matching_is_by_mask_iou_threshold_and_zero_padding_is_ignored():
    gt_boxes = np.array([[0, 0, 10, 10], [0, 0, 0, 0]])  # second row: zero padding
    gt_masks = _box_mask([[0, 0, 10, 10], [0, 0, 0, 0]])
    pred_boxes = np.array([[0, 0, 8, 8]])  # mask IoU 64 / 100 = 0.64
    pred_masks = _box_mask(pred_boxes)
    args = (gt_boxes, np.array([1, 0]), gt_masks, pred_boxes, np.array([1]), np.array([0.9]), pred_masks)
    assert utils.compute_ap(*args, iou_threshold=0.5)[0] == pytest.approx(1.0)
    assert utils.compute_ap(*args, iou_threshold=0.7)[0] == 0.0
    # 0.5, 0.55, 0.6 match, 0.65 .. 0.95 do not: 3 of 10 thresholds.
    assert utils.compute_ap_range(*args, verbose=0) == pytest.approx(0.3)
    assert utils.compute_ap_range(*args, iou_thresholds=[0.5, 0.7], verbose=0) == pytest.approx(0.5)


def test_compute_recall_counts_gt_boxes_found():
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]])
    pred = np.array([[0, 0, 10, 10], [0, 0, 10, 8], [20, 20, 30, 24]])  # IoU 1, 0.8 (same GT), 0.4
    recall, positive_ids = utils.compute_recall(pred, gt, 0.5)
    assert recall == pytest.approx(1 / 3)
    np.testing.assert_array_equal(positive_ids, [0, 1])


def test_compute_overlaps_masks_and_empty_sets():
    a = _box_mask([[0, 0, 10, 10]])
    b = _box_mask([[0, 0, 10, 5], [10, 10, 20, 20]])
    np.testing.assert_allclose(utils.compute_overlaps_masks(a, b), [[0.5, 0.0]])
    assert utils.compute_overlaps_masks(a, np.zeros((20, 20, 0))).shape == (1, 0)


def test_resize_follows_scikit_image_conventions():
    image = np.array([[0, 255], [255, 0]], dtype=np.uint8)
    up = utils.resize(image, (4, 4), preserve_range=True, mode="edge")
    assert up[0, 0] == 0 and up[0, 3] == 255 and up[1, 1] == pytest.approx(255 * 0.375)
    assert utils.resize(image, (4, 4), mode="edge").max() == pytest.approx(1.0)  # uint8 -> [0, 1]
    np.testing.assert_array_equal(utils.resize(image, (4, 4), order=0, preserve_range=True),
                                  np.kron([[0, 255], [255, 0]], np.ones((2, 2))))
    with pytest.raises(ValueError, match="anti_aliasing"):
        utils.resize(image, (4, 4), anti_aliasing=True)


def test_coco_evaluate_box_and_mask_map_of_a_perfect_and_a_shifted_detector():
    from tfsynth.models.mask_rcnn.evaluate import coco_evaluate
    from tfsynth.models.mask_rcnn.shapes import ShapesDataset

    ds = ShapesDataset()
    ds.load_shapes(3, height=64, width=64, seed=5)
    ds.prepare()

    def perfect(images):
        image_id = next(i for i in ds.image_ids if np.array_equal(ds.load_image(i), images[0]))
        masks, class_ids = ds.load_mask(image_id)
        return [{"rois": utils.extract_bboxes(masks), "class_ids": class_ids,
                 "scores": np.ones(len(class_ids)), "masks": masks}]

    stats = coco_evaluate(ds, perfect)
    assert stats["bbox"]["AP"] == pytest.approx(1.0) and stats["segm"]["AP"] == pytest.approx(1.0)

    def wrong_class(images):
        r = perfect(images)[0]
        r["class_ids"] = 3 - r["class_ids"]  # rectangle <-> ellipse
        return [r]

    stats = coco_evaluate(ds, wrong_class)
    assert stats["bbox"]["AP"] == 0.0 and stats["segm"]["AP50"] == 0.0


def test_visualize_writes_png_files_and_tensorboard_images(tmp_path):
    import matplotlib

    assert matplotlib.get_backend().lower() == "agg"
    image = np.full((32, 32, 3), 40, np.uint8)
    boxes = np.array([[2, 2, 12, 12], [16, 16, 30, 30]])
    masks = _box_mask(boxes, (32, 32))
    class_ids = np.array([1, 2])
    visualize.save_figures(str(tmp_path / "png"), tensorboard_logdir=str(tmp_path / "tb"))
    try:
        fig = visualize.display_instances(image, boxes, masks, class_ids, ["BG", "a", "b"], np.array([.9, .8]),
                                          figsize=(3, 3))
        pixels = visualize.figure_to_array(fig)
        visualize.display_top_masks(image, masks, class_ids, ["BG", "a", "b"])
        ap, precisions, recalls, _ = utils.compute_ap(boxes, class_ids, masks, boxes, class_ids,
                                                      np.array([.9, .8]), masks)
        visualize.plot_precision_recall(ap, precisions, recalls)
        visualize.display_differences(image, boxes, class_ids, masks, boxes, class_ids, np.array([.9, .8]), masks,
                                      ["BG", "a", "b"])
        visualize.draw_boxes(image, boxes=boxes, refined_boxes=boxes + 1, masks=masks, captions=["x", "y"])
    finally:
        visualize.save_figures()
    names = sorted(os.path.basename(p) for p in glob.glob(str(tmp_path / "png" / "*.png")))
    assert names == ["0000_display_instances.png", "0001_display_images.png", "0002_plot_precision_recall.png",
                     "0003_display_instances.png", "0004_draw_boxes.png"]
    assert pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.std() > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"tensors": 0})
    events.Reload()
    assert set(events.Tags()["tensors"]) == {"display_instances", "display_images", "plot_precision_recall",
                                            "draw_boxes"}
    # apply_mask blends in place with matterport's formula; random_colors are distinct hues.
    img = np.zeros((2, 2, 3), np.float64)
    visualize.apply_mask(img, np.array([[1, 0], [0, 0]]), (1.0, 0.0, 0.0), alpha=0.5)
    np.testing.assert_allclose(img[0, 0], [127.5, 0, 0]) and np.testing.assert_allclose(img[1, 1], 0)
    assert len(set(visualize.random_colors(5))) == 5
    canvas = visualize.draw_box(np.zeros((10, 10, 3), np.uint8), (2, 2, 8, 8), (255, 0, 0))
    assert canvas[2, 5, 0] == 255 and canvas[5, 5, 0] == 0


def test_weight_stats_overlaps_and_rois_without_a_notebook(tmp_path, capsys):
    import keras

    dense = keras.layers.Dense(2, name="head")
    dense.build((None, 3))

    class Model:
        def get_trainable_layers(self):
            return [dense]

    rows = visualize.display_weight_stats(Model())
    assert rows[0] == ["WEIGHT NAME", "SHAPE", "MIN", "MAX", "STD"] and len(rows) == 3
    assert "dead?" in rows[2][0] and "dead?" not in rows[1][0]  # the zero-initialised bias is constant
    assert "WEIGHT NAME" in capsys.readouterr().out  # printed as text: no IPython here
    visualize.save_figures(str(tmp_path))
    try:
        visualize.plot_overlaps(np.array([1, 2]), np.array([1, 1]), np.array([.9, .6]),
                                np.array([[0.9, 0.0], [0.0, 0.7]]), ["BG", "a", "b"])
        np.random.seed(0)
        rois = np.array([[2, 2, 12, 12], [16, 16, 30, 30]])
        visualize.draw_rois(np.zeros((32, 32, 3), np.uint8), rois, rois + 1, np.ones((2, 7, 7)), np.array([1, 0]),
                            ["BG", "a"])
    finally:
        visualize.save_figures()
    assert sorted(os.listdir(tmp_path)) == ["0000_plot_overlaps.png", "0001_draw_rois.png"]
    assert "Positive ROIs:  1" in capsys.readouterr().out
