"""The full seed-1 FractalDB-1k search against the official categories, all 1,000 of them (slow: a few CPU-min).

tests/data/conformance/fractaldb_official_1k.json holds, per official category file
(hirokatsukataoka16/FractalDB-Pretrained-ResNet-PyTorch data/csv_rate0.2_category1000, commit in the file), short
SHA-256 fingerprints of its bytes and of its rows as float64, computed from the authors' files by
tools/conformance/fractaldb_official.py with NumPy alone. Our search must give the same rows, bit for bit and in
order, and write the same bytes.
"""
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tfsynth.fractals import dataset, render
from tfsynth.fractals.params_csv import category_file_name, read_params_csv, write_params_csv
from tfsynth.fractals.search import SearchConfig, search_categories

DATA = Path(__file__).parent / "data"
FINGERPRINTS = json.loads((DATA / "conformance" / "fractaldb_official_1k.json").read_text())
# Pixel hashes of images drawn by the official renderer (tools/conformance/fractaldb_renderer.py)
RENDERS = json.loads((DATA / "conformance" / "fractaldb_official_renders.json").read_text())
STORED_OFFICIAL = (0, 1, 2)  # categories whose official CSVs are in tests/data/fractaldb_official


def _render_hashes(category, params):
    """{'NNNNN/draw/wWW': sha256[:16] of our flip-0 image} for every official render of `category`."""
    out = {}
    weights = tuple(int(w) for w in RENDERS["weights"])
    for draw_type in ("point_gray", "point_color"):
        config = dataset.FractalDBConfig(num_categories=1, draw_type=draw_type, patches_per_weight=1,
                                         weight_indices=weights, flips=(0,))
        assert (config.image_size, config.pad, config.num_points) == (
            RENDERS["image_size"], RENDERS["pad"], RENDERS["iterations"])
        for weight_index in weights:
            (_, example), = dataset.render_unit(config, category, params, weight_index)
            image = np.array(Image.open(io.BytesIO(example["image"])))
            out[f"{category:05d}/{draw_type}/w{weight_index:02d}"] = _sha16(np.ascontiguousarray(image).tobytes())
    return out


def _expected_renders(category):
    return {k: v for k, v in RENDERS["renders"].items() if k.startswith(f"{category:05d}/")}


def _sha16(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


@pytest.mark.slow
def test_seed1_search_reproduces_all_1000_official_categories(tmp_path):
    categories, stats = search_categories(1000, SearchConfig(seed=1))
    assert len(categories) == 1000
    values = [_sha16(np.ascontiguousarray(c, dtype="<f8").tobytes()) for c in categories]
    wrong_values = [i for i, (ours, theirs) in enumerate(zip(values, FINGERPRINTS["values_sha256_16"]))
                    if ours != theirs]
    assert not wrong_values, f"{len(wrong_values)} categories differ from the official rows, first {wrong_values[:10]}"
    assert [len(c) for c in categories] == FINGERPRINTS["n_maps"]
    text = []
    for index, params in enumerate(categories):
        path = tmp_path / category_file_name(index)
        write_params_csv(path, params)
        text.append(_sha16(path.read_bytes()))
    wrong_text = [i for i, (ours, theirs) in enumerate(zip(text, FINGERPRINTS["text_sha256_16"])) if ours != theirs]
    assert not wrong_text, f"{len(wrong_text)} category files differ from the official bytes, first {wrong_text[:10]}"
    # Our search's own count (the official code does not report it): the README quotes it.
    assert stats.candidates == 42_655
    assert stats.accepted == 1000
    # Point renders of the searched categories equal the official renderer's, pixel for pixel.
    for category in sorted({int(k.split("/")[0]) for k in RENDERS["renders"]} - set(STORED_OFFICIAL)):
        assert _render_hashes(category, categories[category]) == _expected_renders(category), category


def test_weight_table_rows_used_for_the_official_renders_are_ours():
    table = render.weight_variants(0.4)
    for index, row in RENDERS["weights"].items():
        np.testing.assert_array_equal(table[int(index)], row)


@pytest.mark.parametrize("category", STORED_OFFICIAL)
def test_point_renders_of_stored_official_categories_equal_the_official_renderer(category):
    params = read_params_csv(DATA / "fractaldb_official" / category_file_name(category))
    expected = _expected_renders(category)
    assert len(expected) == 8  # 4 weight variants x 2 draw types
    assert _render_hashes(category, params) == expected


def test_fingerprints_cover_the_official_1k_and_match_the_three_stored_official_files():
    """The fingerprint file is complete, and agrees with the three official CSVs kept in tests/data."""
    official = Path(__file__).parent / "data" / "fractaldb_official"
    assert len(FINGERPRINTS["text_sha256_16"]) == len(FINGERPRINTS["values_sha256_16"]) == 1000
    assert len(set(FINGERPRINTS["values_sha256_16"])) == 1000
    for index in range(3):
        data = (official / category_file_name(index)).read_bytes()
        assert _sha16(data) == FINGERPRINTS["text_sha256_16"][index]
        rows = np.loadtxt(official / category_file_name(index), delimiter=",", ndmin=2)
        assert _sha16(np.ascontiguousarray(rows, dtype="<f8").tobytes()) == FINGERPRINTS["values_sha256_16"][index]
