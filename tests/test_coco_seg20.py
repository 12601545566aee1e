"""coco_seg20: torchvision's COCO -> VOC label-map conversion on a hand-written COCO-format fixture, and a real build.

`write_tiny_coco(root)` writes the fixture (also used by tests/test_train_segment.py): COCO 2017 layout,
small JPEG/PNG images, annotations whose expected label maps are written out by hand below (integer rectangles:
pycocotools rasterises polygon [x0,y0, x1,y0, x1,y1, x0,y1] as rows y0..y1-1, columns x0..x1-1).
"""
import atexit
import functools
import io
import json
import os
import shutil
import tempfile

import numpy as np
import pytest
from PIL import Image

from tfsynth.segmentation import coco

PERSON, DOG, CAT, CAR, BUS, SHEEP, TV, TRUCK = 1, 18, 17, 3, 6, 20, 72, 8  # COCO category ids (truck: not VOC)
CLASS = {PERSON: 15, DOG: 12, CAT: 8, CAR: 7, BUS: 6, SHEEP: 17, TV: 20}  # VOC class = index in CAT_LIST


def _rect(x0, y0, x1, y1):
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def _uncompressed_rle(mask):
    """COCO uncompressed RLE (column-major runs starting with zeros), written without pycocotools."""
    flat = mask.T.ravel().astype(np.uint8)
    counts, value, run = [], 0, 0
    for v in flat:
        if v == value:
            run += 1
        else:
            counts.append(run)
            value, run = v, 1
    counts.append(run)
    return {"counts": counts, "size": list(mask.shape)}


def _box(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def _image(rng, h, w, mode="RGB"):
    pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return Image.fromarray(pixels).convert(mode)


def write_tiny_coco(root) -> dict:
    """Writes the fixture under `root`; returns {image id: expected (H, W) uint8 label map} of the valid images
    plus the ids of the invalid / broken ones."""
    rng = np.random.default_rng(0)
    root = str(root)
    files, annotations, expected = {"train": [], "validation": []}, {"train": [], "validation": []}, {}
    ann_id = [1000]

    def add_image(split, image_id, name, h, w, fmt="JPEG", mode="RGB", write=True, file_size=None):
        folder = os.path.join(root, "train2017" if split == "train" else "val2017")
        os.makedirs(folder, exist_ok=True)
        if write:
            fw, fh = file_size or (w, h)
            _image(rng, fh, fw, mode).save(os.path.join(folder, name), format=fmt)
        files[split].append({"id": image_id, "file_name": name, "height": h, "width": w})

    def add_ann(split, image_id, category, segmentation, area, iscrowd=0):
        ann_id[0] += 1
        annotations[split].append({"id": ann_id[0], "image_id": image_id, "category_id": category,
                                   "segmentation": segmentation, "area": area, "iscrowd": iscrowd,
                                   "bbox": [0, 0, 1, 1]})

    # --- train2017 ---
    # 1: person rectangle, dog RLE overlapping it (overlap -> 255), a truck over everything (dropped).
    add_image("train", 1, "000000000001.jpg", 40, 48)
    add_ann("train", 1, PERSON, [_rect(4, 4, 30, 30)], 676.0)
    add_ann("train", 1, DOG, _uncompressed_rle(_box(40, 48, 20, 36, 20, 41)), 336.0)
    add_ann("train", 1, TRUCK, [_rect(0, 0, 48, 40)], 1920.0)
    lab = np.zeros((40, 48), np.uint8)
    lab[4:30, 4:30] = CLASS[PERSON]
    lab[20:36, 20:41] = CLASS[DOG]
    lab[20:30, 20:30] = 255
    expected[1] = lab
    # 2: PNG; crowd person (RLE) on top rows, cat as two polygons (one object).
    add_image("train", 2, "000000000002.png", 32, 40, fmt="PNG")
    add_ann("train", 2, PERSON, _uncompressed_rle(_box(32, 40, 0, 16, 0, 40)), 640.0, iscrowd=1)
    add_ann("train", 2, CAT, [_rect(24, 18, 36, 30), _rect(2, 20, 10, 28)], 1500.0)
    lab = np.zeros((32, 40), np.uint8)
    lab[0:16, :] = CLASS[PERSON]
    lab[18:30, 24:36] = CLASS[CAT]
    lab[20:28, 2:10] = CLASS[CAT]
    expected[2] = lab
    # 3: greyscale JPEG, one car.
    add_image("train", 3, "000000000003.jpg", 32, 32, mode="L")
    add_ann("train", 3, CAR, [_rect(8, 8, 24, 20)], 1200.0)
    lab = np.zeros((32, 32), np.uint8)
    lab[8:20, 8:24] = CLASS[CAR]
    expected[3] = lab
    # 4: only a non-VOC category -> invalid.
    add_image("train", 4, "000000000004.jpg", 32, 32)
    add_ann("train", 4, TRUCK, [_rect(0, 0, 32, 32)], 5000.0)
    # 5: a VOC object of area 500 -> invalid (needs > 1000).
    add_image("train", 5, "000000000005.jpg", 32, 32)
    add_ann("train", 5, BUS, [_rect(0, 0, 10, 10)], 500.0)
    # 6: two objects, 600 + 500 = 1100 > 1000 -> valid.
    add_image("train", 6, "000000000006.jpg", 32, 32)
    add_ann("train", 6, BUS, [_rect(0, 0, 10, 10)], 600.0)
    add_ann("train", 6, DOG, [_rect(16, 16, 26, 26)], 500.0)
    lab = np.zeros((32, 32), np.uint8)
    lab[0:10, 0:10] = CLASS[BUS]
    lab[16:26, 16:26] = CLASS[DOG]
    expected[6] = lab
    # 7: 400 + 600 = 1000, not > 1000 -> invalid.
    add_image("train", 7, "000000000007.jpg", 32, 32)
    add_ann("train", 7, BUS, [_rect(0, 0, 10, 10)], 400.0)
    add_ann("train", 7, CAR, [_rect(12, 12, 20, 20)], 600.0)
    # 8: valid annotations, corrupt file -> skipped when reached.
    add_image("train", 8, "000000000008.jpg", 32, 32, write=False)
    with open(os.path.join(root, "train2017", "000000000008.jpg"), "wb") as f:
        f.write(b"\xff\xd8\xff\xe0 not really a jpeg")
    add_ann("train", 8, CAR, [_rect(0, 0, 32, 32)], 2000.0)
    # 9: valid annotations, file smaller than annotated -> skipped when reached.
    add_image("train", 9, "000000000009.jpg", 32, 32, file_size=(24, 24))
    add_ann("train", 9, CAR, [_rect(0, 0, 32, 32)], 2000.0)

    # --- val2017 ---
    # 101: two sheep instances overlapping: 255 although the class is the same (torchvision's masks.sum > 1).
    add_image("validation", 101, "000000000101.jpg", 30, 40)
    add_ann("validation", 101, SHEEP, [_rect(2, 2, 20, 20)], 600.0)
    add_ann("validation", 101, SHEEP, [_rect(10, 10, 30, 28)], 600.0)
    lab = np.zeros((30, 40), np.uint8)
    lab[2:20, 2:20] = CLASS[SHEEP]
    lab[10:28, 10:30] = CLASS[SHEEP]
    lab[10:20, 10:20] = 255
    expected[101] = lab
    # 102: PNG, a tv monitor as *compressed* RLE (string counts).
    from pycocotools import mask as coco_mask

    tv = _box(30, 30, 5, 25, 3, 28)
    rle = coco_mask.encode(np.asfortranarray(tv))
    add_image("validation", 102, "000000000102.png", 30, 30, fmt="PNG")
    add_ann("validation", 102, TV, {"counts": rle["counts"].decode("ascii"), "size": rle["size"]}, 1100.0)
    expected[102] = tv * CLASS[TV]
    # 103: no annotations at all -> invalid when validation is filtered.
    add_image("validation", 103, "000000000103.jpg", 30, 30)

    categories = [{"id": c, "name": f"cat{c}", "supercategory": "x"} for c in sorted({*CLASS, TRUCK})]
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    for split, name in (("train", "train2017"), ("validation", "val2017")):
        with open(os.path.join(root, "annotations", f"instances_{name}.json"), "w") as f:
            json.dump({"images": files[split], "annotations": annotations[split], "categories": categories}, f)
    return {"expected": expected, "valid_train": [1, 2, 3, 6, 8, 9], "broken_train": [8, 9],
            "valid_validation": [101, 102], "all_validation": [101, 102, 103]}


@functools.lru_cache(maxsize=None)
def tiny_coco_dir() -> str:
    root = tempfile.mkdtemp(prefix="tfsynth-coco-")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    write_tiny_coco(root)
    return root


@functools.lru_cache(maxsize=None)
def tiny_seg_data_dir() -> str:
    """A TFDS data_dir with coco_seg20/tiny (from the fixture) and noise_scenes/perlin_tiny, built once per process."""
    import tensorflow_datasets as tfds

    import tfds_builders.coco_seg20  # noqa: F401 - registers the builders
    import tfds_builders.noise_scenes  # noqa: F401
    from tfsynth.input.datasets import beam_download_config

    data_dir = tempfile.mkdtemp(prefix="tfsynth-seg-tfds-")
    atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    tfds.builder("coco_seg20", config="tiny", data_dir=data_dir).download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=tiny_coco_dir()))
    tfds.builder("noise_scenes", config="perlin_tiny", data_dir=data_dir).download_and_prepare(
        download_config=beam_download_config())
    return data_dir


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    return str(root), write_tiny_coco(root)


def _anns(c, image_id):
    return c.loadAnns(c.getAnnIds(imgIds=image_id, iscrowd=None))


def test_label_maps_follow_torchvision(fixture_root):
    root, info = fixture_root
    for split in coco.SPLITS:
        image_dir, annotation_file = coco.split_files(root, split)
        c = coco.load_coco(annotation_file)
        for image_id in c.getImgIds():
            if image_id not in info["expected"]:
                continue
            meta = c.loadImgs(image_id)[0]
            got = coco.label_map(coco.filter_and_remap(_anns(c, image_id)), meta["height"], meta["width"])
            np.testing.assert_array_equal(got, info["expected"][image_id], err_msg=str(image_id))
            assert got.dtype == np.uint8


def test_category_remap_is_torchvision_cat_list():
    assert coco.CAT_LIST == (0, 5, 2, 16, 9, 44, 6, 3, 17, 62, 21, 67, 18, 19, 4, 1, 64, 20, 63, 7, 72)
    assert len(coco.CLASS_NAMES) == 21 and coco.CLASS_NAMES[15] == "person" and coco.CLASS_NAMES[20] == "tvmonitor"
    anns = [{"category_id": 1, "x": [1]}, {"category_id": 8}, {"category_id": 72}]
    out = coco.filter_and_remap(anns)
    assert [a["category_id"] for a in out] == [15, 20]
    assert anns[0]["category_id"] == 1  # input untouched (deep copy, as torchvision)
    assert coco.label_map([], 3, 4).tolist() == [[0] * 4] * 3


def test_valid_images_and_seeded_subsample(fixture_root):
    root, info = fixture_root
    train = coco.load_coco(coco.split_files(root, "train")[1])
    val = coco.load_coco(coco.split_files(root, "validation")[1])
    assert coco.valid_image_ids(train, coco.CocoSegConfig(), "train") == info["valid_train"]
    assert coco.valid_image_ids(val, coco.CocoSegConfig(), "validation") == info["valid_validation"]
    assert (coco.valid_image_ids(val, coco.CocoSegConfig(filter_validation=False), "validation")
            == info["all_validation"])
    order = coco.subsample_order(info["valid_train"], seed=0, split="train")
    assert sorted(order) == info["valid_train"]
    assert order == coco.subsample_order(info["valid_train"], seed=0, split="train")
    orders = {tuple(coco.subsample_order(list(range(50)), seed=s, split=sp)) for s in (0, 1) for sp in coco.SPLITS}
    assert len(orders) == 4  # seed and split both change the order


def test_examples_skip_and_count_broken_files(fixture_root):
    root, info = fixture_root
    stats = {}
    got = dict(coco.examples(root, coco.CocoSegConfig(num_train=None), "train", stats=stats))
    assert sorted(got) == [1, 2, 3, 6]
    assert stats["valid"] == 6 and stats["selected"] == 4 and sorted(stats["skipped"]) == info["broken_train"]
    assert "cannot read image" in stats["skipped"][8] and "annotations say 32x32" in stats["skipped"][9]
    assert "000000000008.jpg" in stats["skipped"][8]
    ex = got[2]
    assert ex["image/filename"] == "000000000002.png" and ex["label"].shape == (32, 40, 1)
    assert ex["objects"]["label"].tolist() == [CLASS[PERSON], CLASS[CAT]]
    assert ex["objects"]["is_crowd"].tolist() == [True, False]
    assert got[3]["image"].encoded is None and got[3]["image"].pixels.shape == (32, 32, 3)  # grey -> RGB
    assert got[1]["image"].pixels is None  # RGB JPEG: original bytes kept
    with pytest.raises(ValueError, match="asked for 5 images, but only 4"):
        list(coco.examples(root, coco.CocoSegConfig(num_train=5), "train"))


def test_missing_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="instances_val2017.json.*image directory"):
        coco.split_files(str(tmp_path), "validation")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: not a COCO instances annotation file"):
        coco.load_coco(str(bad))


def test_tiny_build(tmp_path):
    import tensorflow_datasets as tfds

    from tfds_builders.coco_seg20 import Builder

    root = tmp_path / "coco"
    info = write_tiny_coco(root)
    builder = Builder(config="tiny", data_dir=str(tmp_path / "tfds"))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(root)))
    assert builder.info.splits["train"].num_examples == 3
    assert builder.info.splits["validation"].num_examples == 2
    assert builder.info.features["label"].num_classes == 21
    assert builder.info.features["label"].names == list(coco.CLASS_NAMES)

    decoders = {"image": tfds.decode.SkipDecoding()}
    seen = {}
    for split in coco.SPLITS:
        for ex in tfds.as_numpy(builder.as_dataset(split=split, decoders=decoders)):
            image_id = int(ex["image/id"])
            seen[image_id] = split
            np.testing.assert_array_equal(ex["label"][..., 0], info["expected"][image_id])
            folder = "train2017" if split == "train" else "val2017"
            path = os.path.join(root, folder, ex["image/filename"].decode())
            with Image.open(path) as im:
                original = np.asarray(im.convert("RGB"))
                if im.mode == "RGB":
                    with open(path, "rb") as f:
                        assert ex["image"] == f.read()  # stored as is
            decoded = np.asarray(Image.open(io.BytesIO(ex["image"])).convert("RGB"))
            assert decoded.shape == original.shape
            if Image.open(path).mode != "RGB":  # converted and re-encoded as JPEG: close, not exact
                assert np.abs(decoded.astype(int) - original.astype(int)).mean() < 20
    train_ids = sorted(i for i, s in seen.items() if s == "train")
    assert len(train_ids) == 3 and set(train_ids) <= {1, 2, 3, 6}  # never the broken files
    assert sorted(i for i, s in seen.items() if s == "validation") == [101, 102]

    # Same seed, same subsample; a rebuild elsewhere holds the same ids.
    again = Builder(config="tiny", data_dir=str(tmp_path / "tfds2"))
    again.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(root)))
    ids = sorted(int(ex["image/id"]) for ex in tfds.as_numpy(again.as_dataset(split="train", decoders=decoders)))
    assert ids == train_ids


def test_builder_configs():
    from tfds_builders.coco_seg20 import Builder

    configs = {c.name: c.coco for c in Builder.BUILDER_CONFIGS}
    assert list(configs) == ["1k", "full", "tiny"] and Builder.DEFAULT_BUILDER_CONFIG_NAME == "1k"
    assert (configs["1k"].num_train, configs["1k"].num_validation, configs["1k"].seed) == (1000, 1000, 0)
    assert configs["full"].num_train is None and configs["1k"].min_area == 1000
    description = Builder(config="tiny", data_dir="/nonexistent").info.description  # the folder's README.md
    assert f"CAT_LIST = {list(coco.CAT_LIST)}" in description
    assert ", ".join(coco.CLASS_NAMES) in " ".join(description.split())
