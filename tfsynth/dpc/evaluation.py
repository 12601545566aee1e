"""eval.shape_pose logic: predictions of a trained DPC model, Chamfer and pose scores (seed Table 6.2), and the
real-image mask disagreement (seed §6.3, Figures 6.5 / 7.1).

Per test view the model predicts a point cloud and a camera quaternion (the student head). For an unsupervised model
one global rotation, estimated on validation models (`metrics.global_alignment`), maps its canonical frame to the
ground truth's before scoring; `alignment='none'` skips it (a model trained with ground-truth cameras).
"""
from __future__ import annotations

import json
import os
from typing import Optional

import numpy as np

from tfsynth import markdown
from tfsynth.dpc import data as dpc_data
from tfsynth.dpc import geometry as geo
from tfsynth.dpc import metrics
from tfsynth.dpc.training import load_trained, predict
from tfsynth.workdir import RESULTS_NAME


def predict_set(model, config, data: dpc_data.MultiviewSet) -> dict:
    """{'points': (M, V, N, 3), 'poses': (M, V, 4)} for every view of every model."""
    m, v = len(data), data.num_views
    images = data.images.reshape((m * v,) + data.images.shape[2:]).astype(np.float32) / 255.0
    out = predict(model, config, images)
    return {"points": out["points"].reshape(m, v, -1, 3), "poses": out["poses"].reshape(m, v, 4),
            "scale": out["scale"].reshape(m, v)}


def estimate_alignment(model, config, val: dpc_data.MultiviewSet, max_models: int = 50,
                       gt_points: int = 4000, seed: int = 0) -> tuple[np.ndarray, dict]:
    """The reference's procedure on (at most `max_models`) validation models; returns the quaternion and details."""
    val = _subset(val, max_models)
    pred = predict_set(model, config, val)
    rng = np.random.default_rng(seed)
    gts = [_subsample(p, gt_points, rng) for p in val.points]
    q, info = metrics.global_alignment(list(pred["points"]), list(pred["poses"]), gts, list(val.quaternions))
    return q, info


def _subset(data: dpc_data.MultiviewSet, n: int) -> dpc_data.MultiviewSet:
    if not n or len(data) <= n:
        return data
    return dpc_data.MultiviewSet(data.images[:n], data.masks[:n], data.quaternions[:n], data.points[:n],
                                 data.model_ids[:n])


def _subsample(points, n, rng):
    return points if len(points) <= n else points[rng.choice(len(points), n, replace=False)]


def score_set(model, config, data: dpc_data.MultiviewSet, alignment: Optional[np.ndarray],
              threshold_deg: float = 30.0, save_path: str = "") -> dict:
    """Table 6.2 columns for one test set: Chamfer precision / coverage / sum (x 100), pose accuracy and median.

    save_path: also write the predictions (.npz: model_ids, points (M, V, N, 3), poses (M, V, 4) [w, x, y, z] in the
    model's own frame, alignment) for downstream use (renders, the AIST comparison).
    """
    pred = predict_set(model, config, data)
    if save_path:
        np.savez_compressed(save_path, model_ids=np.array(data.model_ids), points=pred["points"].astype(np.float16),
                            poses=pred["poses"], scale=pred["scale"],
                            alignment=np.zeros(0) if alignment is None else alignment)
    per_view = np.zeros((len(data), data.num_views, 2))
    errors = np.zeros((len(data), data.num_views))
    for i in range(len(data)):
        for k in range(data.num_views):
            pts, q = pred["points"][i, k], pred["poses"][i, k]
            if alignment is not None:
                pts, q = metrics.align_points(pts, alignment), metrics.align_pose(q, alignment)
            c = metrics.chamfer(pts, data.points[i])
            per_view[i, k] = c["precision"], c["coverage"]
            errors[i, k] = metrics.angular_error(q, data.quaternions[i, k])
    row = metrics.chamfer_table(per_view)
    row.update(metrics.pose_table(errors, threshold_deg))
    row["models"], row["views"] = len(data), int(data.num_views)
    return row


def real_disagreement(model, config, images, masks) -> np.ndarray:
    """Normalised mask disagreement per real image: the predicted shape drawn (sharply) from the predicted pose."""
    out = predict(model, config, np.asarray(images, np.float32) / 255.0 if np.asarray(images).dtype == np.uint8
                  else np.asarray(images, np.float32))
    scores = []
    for pts, q, mask in zip(out["points"], out["poses"], masks):
        size = mask.shape[0]
        drawn = geo.silhouette_from_points(pts, q, size, radius=max(1.0, size / 64), focal_length=config.focal_length,
                                           camera_distance=config.camera_distance)
        scores.append(metrics.mask_disagreement(mask, drawn))
    return np.array(scores)


def load_real(source: str, data_dir: Optional[str] = None, max_images: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Real segmentations for §6.3: a folder of RGBA PNGs (alpha = the segmentation mask, as the cleaned real-car
    images) or any multi-view source (its masks). Returns (images (N, H, W, 3) uint8 on white, masks (N, H, W))."""
    import glob

    from PIL import Image

    if os.path.isdir(source) and glob.glob(os.path.join(source, "*.png")):
        images, masks = [], []
        for f in sorted(glob.glob(os.path.join(source, "*.png")))[: max_images or None]:
            try:
                im = np.asarray(Image.open(f))
            except OSError as err:
                raise dpc_data.SourceError(f"{f}: unreadable image ({err})") from None
            if im.ndim != 3 or im.shape[2] != 4:
                raise dpc_data.SourceError(f"{f}: expected an RGBA PNG whose alpha is the mask, got shape {im.shape}")
            images.append(dpc_data._rgb_on_white(im))
            masks.append((im[..., 3] > 127).astype(np.uint8))
        return np.stack(images), np.stack(masks)
    data = dpc_data.load_source(source, data_dir=data_dir, max_models=max_images)
    m, v = len(data), data.num_views
    return (data.images.reshape((m * v,) + data.images.shape[2:]),
            data.masks.reshape((m * v,) + data.masks.shape[2:]))


def markdown_table(rows: list) -> str:
    """Seed Table 6.2 layout: Experiment | Dataset | Precision | Coverage | Chamfer distance | Accuracy | Median."""
    header = ["Experiment", "Dataset", "Precision", "Coverage", "Chamfer distance", "Accuracy", "Median Error"]
    cells, last = [], None
    for r in rows:
        name = r["experiment"] if r["experiment"] != last else ""
        last = r["experiment"]
        cells.append([name, r["dataset"], *(f"{r[k]:.2f}" for k in ("precision", "coverage", "chamfer", "accuracy",
                                                                     "median_error_deg"))])
    return markdown.table(header, cells)


def run(experiments: dict, datasets: dict, out_dir: str, val_source: str = "", alignment: str = "icp",
        real: str = "", data_dir: Optional[str] = None, max_models: int = 0, align_models: int = 50,
        save_predictions: bool = False) -> dict:
    """experiments: {name: workdir}; datasets: {name: source}. Writes results.json, table.md, (real_kde.png)."""
    os.makedirs(out_dir, exist_ok=True)
    rows, real_scores, alignments = [], {}, {}
    real_set = load_real(real, data_dir, max_models) if real else None
    for exp, workdir in experiments.items():
        model, config = load_trained(workdir)
        q_align = None
        if alignment == "icp":
            val = dpc_data.load_source(val_source or config.val_data or config.data, config.image_size, data_dir,
                                       align_models, config.seed + 1)
            q_align, _ = estimate_alignment(model, config, val, align_models)
            alignments[exp] = q_align.tolist()
        for ds_name, source in datasets.items():
            test = dpc_data.load_source(source, config.image_size, data_dir, max_models, config.seed + 2)
            save = os.path.join(out_dir, f"predictions_{exp}_{ds_name}.npz") if save_predictions else ""
            row = {"experiment": exp, "dataset": ds_name, **score_set(model, config, test, q_align, save_path=save)}
            rows.append(row)
            print(f"{exp} / {ds_name}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()
                                                    if isinstance(v, float)))
        if real_set is not None:
            real_scores[exp] = real_disagreement(model, config, *real_set).tolist()
    results = {"rows": rows, "alignment": alignment, "alignment_quaternions": alignments}
    if real_scores:
        results["real_mask_disagreement"] = {k: {"mean": float(np.mean(v)), "median": float(np.median(v)),
                                                 "scores": v} for k, v in real_scores.items()}
        metrics.plot_kde_cdfs(real_scores, os.path.join(out_dir, "real_kde.png"))
    table = markdown_table(rows)
    with open(os.path.join(out_dir, RESULTS_NAME), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(out_dir, "table.md"), "w") as f:
        f.write(table + "\n")
    print(table)
    return results
