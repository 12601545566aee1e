"""matterport's `mrcnn.visualize`, drawing with matplotlib, usable without a notebook (TF-free).

Where matterport calls `plt.show()`, a figure goes to the sinks set with `save_figures(...)` (or the
environment variable MRCNN_FIGURE_DIR): PNG files in a directory and/or images in a TensorBoard log; with
no sink and an interactive matplotlib backend it is shown, otherwise it stays open for the caller
(`plt.gcf()`). Every drawing function also returns its figure. `display_table` prints a text table when
IPython is not installed. Contours are traced with contourpy (matplotlib's own), not scikit-image.
"""
from __future__ import annotations

import colorsys
import itertools
import os
import random
import re

import matplotlib
import numpy as np

from mrcnn import utils

if not os.environ.get("DISPLAY") and not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import lines, patches  # noqa: E402
from matplotlib.patches import Polygon  # noqa: E402

# matterport's repository root (its samples put it on sys.path); here: the current directory's parent.
ROOT_DIR = os.path.abspath("../")

_sinks = {"directory": None, "writer": None, "logdir": None, "step": 0, "count": 0}


def save_figures(directory=None, tensorboard_logdir=None, step=0):
    """Sends every figure the display functions produce to PNG files `<directory>/<NNNN>_<function>.png`
    and/or TensorBoard images (tag = function name) in `tensorboard_logdir`, starting at `step`.
    Call with no arguments to stop."""
    if _sinks["writer"] is not None:
        _sinks["writer"].close()
    _sinks.update(directory=directory, writer=None, logdir=tensorboard_logdir, step=step, count=0)
    if directory:
        os.makedirs(directory, exist_ok=True)


def figure_to_array(fig) -> np.ndarray:
    """The rendered figure as uint8 RGB [H, W, 3]."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # also works on a figure pyplot has closed
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()


def _emit(fig, name, own=True):
    """matterport's plt.show(): the figure goes to the configured sinks (then closed if this module made
    it), else is shown on an interactive backend. A figure drawn on a caller's `ax` (own=False) is saved to
    the sinks but left open and not shown, as matterport leaves it to the caller."""
    directory = _sinks["directory"] or os.environ.get("MRCNN_FIGURE_DIR")
    sent = False
    if directory:
        os.makedirs(directory, exist_ok=True)
        fig.savefig(os.path.join(directory, f"{_sinks['count']:04d}_{name}.png"))
        sent = True
    if _sinks["logdir"]:
        import tensorflow as tf

        if _sinks["writer"] is None:
            _sinks["writer"] = tf.summary.create_file_writer(_sinks["logdir"])
        with _sinks["writer"].as_default():
            tf.summary.image(name, figure_to_array(fig)[None], step=_sinks["step"] + _sinks["count"])
        _sinks["writer"].flush()
        sent = True
    _sinks["count"] += sent
    if own and sent:
        plt.close(fig)
    elif own and matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "ps", "cairo", "template"):
        plt.show()
    return fig


def display_images(images, titles=None, cols=4, cmap=None, norm=None, interpolation=None):
    """Shows images in a grid, `cols` per row, with optional titles."""
    titles = titles if titles is not None else [""] * len(images)
    rows = len(images) // cols + 1
    fig = plt.figure(figsize=(14, 14 * rows // cols))
    for i, (image, title) in enumerate(zip(images, titles), start=1):
        plt.subplot(rows, cols, i)
        plt.title(title, fontsize=9)
        plt.axis("off")
        plt.imshow(np.asarray(image).astype(np.uint8), cmap=cmap, norm=norm, interpolation=interpolation)
    return _emit(fig, "display_images")


def random_colors(N, bright=True):
    """N visually distinct RGB colours (floats in [0, 1]): evenly spaced hues, shuffled with `random`."""
    value = 1.0 if bright else 0.7
    colors = [colorsys.hsv_to_rgb(i / N, 1, value) for i in range(N)]
    random.shuffle(colors)
    return colors


def apply_mask(image, mask, color, alpha=0.5):
    """Blends `color` (RGB in [0, 1]) into `image` where mask == 1, in place; returns the image."""
    for c in range(3):
        image[:, :, c] = np.where(mask == 1, image[:, :, c] * (1 - alpha) + alpha * color[c] * 255, image[:, :, c])
    return image


def _contours(mask):
    """Outline polygons of a binary mask as (x, y) vertex arrays (the mask padded by one pixel first)."""
    import contourpy

    padded = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), dtype=np.float64)
    padded[1:-1, 1:-1] = mask
    generator = contourpy.contour_generator(z=padded, line_type=contourpy.LineType.Separate)
    return [verts - 1 for verts in generator.lines(0.5)]  # contourpy gives (x, y) already


def display_instances(image, boxes, masks, class_ids, class_names, scores=None, title="", figsize=(16, 16),
                      ax=None, show_mask=True, show_bbox=True, colors=None, captions=None):
    """Draws instances: dashed boxes, translucent masks with outlines, and "class score" captions.

    boxes [N, (y1, x1, y2, x2)], masks [H, W, N], class_ids [N]; scores, colors, captions optional.
    """
    n = boxes.shape[0]
    if not n:
        print("\n*** No instances to display *** \n")
    elif not boxes.shape[0] == masks.shape[-1] == class_ids.shape[0]:
        raise ValueError(f"display_instances: {boxes.shape[0]} boxes, {masks.shape[-1]} masks and "
                         f"{class_ids.shape[0]} class ids must agree")
    own_figure = ax is None
    if own_figure:
        fig, ax = plt.subplots(1, figsize=figsize)
    fig = ax.figure
    colors = colors or random_colors(n)
    height, width = image.shape[:2]
    ax.set_ylim(height + 10, -10)
    ax.set_xlim(-10, width + 10)
    ax.axis("off")
    ax.set_title(title)
    masked = np.asarray(image).astype(np.uint32).copy()
    for i in range(n):
        color = colors[i]
        if not np.any(boxes[i]):
            continue  # an instance cropped away by augmentation
        y1, x1, y2, x2 = boxes[i][:4]
        if show_bbox:
            ax.add_patch(patches.Rectangle((x1, y1), x2 - x1, y2 - y1, linewidth=2, alpha=0.7, linestyle="dashed",
                                           edgecolor=color, facecolor="none"))
        if captions:
            caption = captions[i]
        else:
            label = class_names[class_ids[i]]
            score = scores[i] if scores is not None else None
            caption = f"{label} {score:.3f}" if score else label
        ax.text(x1, y1 + 8, caption, color="w", size=11, backgroundcolor="none")
        mask = masks[:, :, i]
        if show_mask:
            masked = apply_mask(masked, mask, color)
        for verts in _contours(mask):
            ax.add_patch(Polygon(verts, facecolor="none", edgecolor=color))
    ax.imshow(masked.astype(np.uint8))
    return _emit(fig, "display_instances", own=own_figure)


def display_differences(image, gt_box, gt_class_id, gt_mask, pred_box, pred_class_id, pred_score, pred_mask,
                        class_names, title="", ax=None, show_mask=True, show_box=True, iou_threshold=0.5,
                        score_threshold=0.5):
    """Ground truth (green) and predictions (red) on one image; predictions captioned "score / IoU"."""
    gt_match, pred_match, overlaps = utils.compute_matches(gt_box, gt_class_id, gt_mask, pred_box, pred_class_id,
                                                           pred_score, pred_mask, iou_threshold=iou_threshold,
                                                           score_threshold=score_threshold)
    colors = [(0, 1, 0, .8)] * len(gt_match) + [(1, 0, 0, 1)] * len(pred_match)
    class_ids = np.concatenate([gt_class_id, pred_class_id])
    scores = np.concatenate([np.zeros([len(gt_match)]), pred_score])
    boxes = np.concatenate([gt_box, pred_box])
    masks = np.concatenate([gt_mask, pred_mask], axis=-1)
    captions = [""] * len(gt_match) + [
        "{:.2f} / {:.2f}".format(pred_score[i], overlaps[i, int(pred_match[i])] if pred_match[i] > -1
                                 else (overlaps[i].max() if overlaps.shape[1] else 0.0))
        for i in range(len(pred_match))]
    title = title or "Ground Truth and Detections\n GT=green, pred=red, captions: score/IoU"
    return display_instances(image, boxes, masks, class_ids, class_names, scores, ax=ax, show_bbox=show_box,
                             show_mask=show_mask, colors=colors, captions=captions, title=title)


def draw_rois(image, rois, refined_rois, mask, class_ids, class_names, limit=10):
    """Up to `limit` random ROIs (gray when background), their refined boxes and masks; prints the
    positive / negative counts."""
    masked = np.asarray(image).copy()
    ids = np.arange(rois.shape[0], dtype=np.int32)
    ids = np.random.choice(ids, limit, replace=False) if ids.shape[0] > limit else ids
    fig, ax = plt.subplots(1, figsize=(12, 12))
    plt.title(f"Showing {len(ids)} random ROIs out of {rois.shape[0]}" if rois.shape[0] > limit
              else f"{len(ids)} ROIs")
    ax.set_ylim(image.shape[0] + 20, -20)
    ax.set_xlim(-50, image.shape[1] + 20)
    ax.axis("off")
    for roi_id in ids:
        color = np.random.rand(3)
        class_id = class_ids[roi_id]
        y1, x1, y2, x2 = rois[roi_id]
        ax.add_patch(patches.Rectangle((x1, y1), x2 - x1, y2 - y1, linewidth=2,
                                       edgecolor=color if class_id else "gray", facecolor="none", linestyle="dashed"))
        if class_id:
            ry1, rx1, ry2, rx2 = refined_rois[roi_id]
            ax.add_patch(patches.Rectangle((rx1, ry1), rx2 - rx1, ry2 - ry1, linewidth=2, edgecolor=color,
                                           facecolor="none"))
            ax.add_line(lines.Line2D([x1, rx1], [y1, ry1], color=color))
            ax.text(rx1, ry1 + 8, f"{class_names[class_id]}", color="w", size=11, backgroundcolor="none")
            m = utils.unmold_mask(mask[roi_id], rois[roi_id][:4].astype(np.int32), image.shape)
            masked = apply_mask(masked, m, color)
    ax.imshow(masked)
    print("Positive ROIs: ", class_ids[class_ids > 0].shape[0])
    print("Negative ROIs: ", class_ids[class_ids == 0].shape[0])
    print("Positive Ratio: {:.2f}".format(class_ids[class_ids > 0].shape[0] / class_ids.shape[0]))
    return _emit(fig, "draw_rois")


def draw_box(image, box, color):
    """Draws a 2-pixel box outline of RGB `color` into `image` (in place) and returns it."""
    y1, x1, y2, x2 = box
    image[y1:y1 + 2, x1:x2] = color
    image[y2:y2 + 2, x1:x2] = color
    image[y1:y2, x1:x1 + 2] = color
    image[y1:y2, x2:x2 + 2] = color
    return image


def display_top_masks(image, mask, class_ids, class_names, limit=4):
    """The image and, for the `limit` classes with the largest mask area, their instance masks."""
    to_display = [image]
    titles = [f"H x W={image.shape[0]}x{image.shape[1]}"]
    unique_class_ids = np.unique(class_ids)
    areas = [np.sum(mask[:, :, np.where(class_ids == i)[0]]) for i in unique_class_ids]
    top_ids = [c for c, a in sorted(zip(unique_class_ids, areas), key=lambda r: r[1], reverse=True) if a > 0]
    for i in range(limit):
        class_id = top_ids[i] if i < len(top_ids) else -1
        m = mask[:, :, np.where(class_ids == class_id)[0]]
        to_display.append(np.sum(m * np.arange(1, m.shape[-1] + 1), -1))
        titles.append(class_names[class_id] if class_id != -1 else "-")
    return display_images(to_display, titles=titles, cols=limit + 1, cmap="Blues_r")


def plot_precision_recall(AP, precisions, recalls):
    """The precision-recall curve (e.g. from utils.compute_ap), titled with AP@50."""
    fig, ax = plt.subplots(1)
    ax.set_title(f"Precision-Recall Curve. AP@50 = {AP:.3f}")
    ax.set_ylim(0, 1.1)
    ax.set_xlim(0, 1.1)
    ax.plot(recalls, precisions)
    return _emit(fig, "plot_precision_recall")


def plot_overlaps(gt_class_ids, pred_class_ids, pred_scores, overlaps, class_names, threshold=0.5):
    """Grid of prediction x ground-truth IoUs, each cell marked "match" / "wrong" above `threshold`."""
    gt_class_ids = gt_class_ids[gt_class_ids != 0]
    pred_class_ids = pred_class_ids[pred_class_ids != 0]
    fig = plt.figure(figsize=(12, 10))
    plt.imshow(overlaps, interpolation="nearest", cmap=plt.cm.Blues)
    plt.yticks(np.arange(len(pred_class_ids)),
               [f"{class_names[int(c)]} ({pred_scores[i]:.2f})" for i, c in enumerate(pred_class_ids)])
    plt.xticks(np.arange(len(gt_class_ids)), [class_names[int(c)] for c in gt_class_ids], rotation=90)
    half = overlaps.max() / 2.0 if overlaps.size else 0
    for i, j in itertools.product(range(overlaps.shape[0]), range(overlaps.shape[1])):
        text = ""
        if overlaps[i, j] > threshold:
            text = "match" if gt_class_ids[j] == pred_class_ids[i] else "wrong"
        color = "white" if overlaps[i, j] > half else "black" if overlaps[i, j] > 0 else "grey"
        plt.text(j, i, f"{overlaps[i, j]:.3f}\n{text}", horizontalalignment="center", verticalalignment="center",
                 fontsize=9, color=color)
    plt.tight_layout()
    plt.xlabel("Ground Truth")
    plt.ylabel("Predictions")
    return _emit(fig, "plot_overlaps")


def draw_boxes(image, boxes=None, refined_boxes=None, masks=None, captions=None, visibilities=None, title="",
               ax=None):
    """Boxes (dotted), refined boxes (solid, linked to their box), masks and captions.

    visibilities: per box 0 (gray, faint), 1 (dotted) or 2 (solid). masks: [H, W, N].
    """
    if boxes is None and refined_boxes is None:
        raise ValueError("draw_boxes: pass boxes and/or refined_boxes")
    n = boxes.shape[0] if boxes is not None else refined_boxes.shape[0]
    own_figure = ax is None
    if own_figure:
        _, ax = plt.subplots(1, figsize=(12, 12))
    colors = random_colors(n)
    margin = image.shape[0] // 10
    ax.set_ylim(image.shape[0] + margin, -margin)
    ax.set_xlim(-margin, image.shape[1] + margin)
    ax.axis("off")
    ax.set_title(title)
    masked = np.asarray(image).astype(np.uint32).copy()
    for i in range(n):
        visibility = visibilities[i] if visibilities is not None else 1
        color, style, alpha = {0: ("gray", "dotted", 0.5), 1: (colors[i], "dotted", 1),
                               2: (colors[i], "solid", 1)}[int(visibility)]
        if boxes is not None:
            if not np.any(boxes[i]):
                continue
            y1, x1, y2, x2 = boxes[i][:4]
            ax.add_patch(patches.Rectangle((x1, y1), x2 - x1, y2 - y1, linewidth=2, alpha=alpha, linestyle=style,
                                           edgecolor=color, facecolor="none"))
        if refined_boxes is not None and visibility > 0:
            ry1, rx1, ry2, rx2 = np.asarray(refined_boxes[i]).astype(np.int32)
            ax.add_patch(patches.Rectangle((rx1, ry1), rx2 - rx1, ry2 - ry1, linewidth=2, edgecolor=color,
                                           facecolor="none"))
            if boxes is not None:
                ax.add_line(lines.Line2D([x1, rx1], [y1, ry1], color=color))
        if captions is not None:
            if refined_boxes is not None:
                y1, x1 = ry1, rx1
            ax.text(x1, y1, captions[i], size=11, verticalalignment="top", color="w", backgroundcolor="none",
                    bbox={"facecolor": color, "alpha": 0.5, "pad": 2, "edgecolor": "none"})
        if masks is not None:
            mask = masks[:, :, i]
            masked = apply_mask(masked, mask, color if not isinstance(color, str) else (0.5, 0.5, 0.5))
            for verts in _contours(mask):
                ax.add_patch(Polygon(verts, facecolor="none", edgecolor=color))
    ax.imshow(masked.astype(np.uint8))
    return _emit(ax.figure, "draw_boxes", own=own_figure)


def display_table(table):
    """Shows rows of values as an HTML table in a notebook, else prints aligned text; returns the text."""
    rows = [[re.sub(r"<[^>]+>", "", str(col)) for col in row] for row in table]
    text = "\n".join("".join(f"{col:40}" for col in row).rstrip() for row in rows)
    try:
        import IPython.display
    except ImportError:
        print(text)
        return text
    html = "<table>" + "".join("<tr>" + "".join(f"<td>{str(c):40}</td>" for c in row) + "</tr>"
                               for row in table) + "</table>"
    IPython.display.display(IPython.display.HTML(html))
    return text


def display_weight_stats(model):
    """Table of every weight of the model's weighted layers: name, shape, min, max, std; flags constant
    ("dead?") and huge ("Overflow?") weights. Returns the rows."""
    table = [["WEIGHT NAME", "SHAPE", "MIN", "MAX", "STD"]]
    for layer in model.get_trainable_layers():
        for i, (variable, w) in enumerate(zip(layer.weights, layer.get_weights())):
            alert = ""
            if w.min() == w.max() and not (layer.__class__.__name__ == "Conv2D" and i == 1):
                alert += "<span style='color:red'>*** dead?</span>"
            if np.abs(w.min()) > 1000 or np.abs(w.max()) > 1000:
                alert += "<span style='color:red'>*** Overflow?</span>"
            name = getattr(variable, "path", None) or variable.name
            table.append([name + alert, str(w.shape), f"{w.min():+9.4f}", f"{w.max():+10.4f}", f"{w.std():+9.4f}"])
    display_table(table)
    return table
