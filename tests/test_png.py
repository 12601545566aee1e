"""tfsynth.png: the generators' PNG writer decodes to exactly the input pixels (Pillow and TensorFlow decoders)."""
import io
import zlib

import numpy as np
import pytest
from PIL import Image

from tfsynth.png import encode_png


def _images():
    rng = np.random.default_rng(0)
    sparse = np.zeros((37, 53, 3), np.uint8)
    sparse[10:20, 5:40] = rng.integers(0, 256, (10, 35, 3), dtype=np.uint8)
    yield "noise_rgb", rng.integers(0, 256, (31, 17, 3), dtype=np.uint8)
    yield "sparse_rgb", sparse
    yield "grey_2d", rng.integers(0, 256, (8, 9), dtype=np.uint8)
    yield "grey_1ch", rng.integers(0, 2, (12, 5, 1), dtype=np.uint8) * 255
    yield "rgba", rng.integers(0, 256, (6, 7, 4), dtype=np.uint8)
    yield "one_pixel", np.array([[[255, 0, 128]]], np.uint8)
    yield "strided", rng.integers(0, 256, (20, 30, 4), dtype=np.uint8)[::-1, ::2, :3]  # a flipped, strided view


@pytest.mark.parametrize("name,image", list(_images()), ids=[n for n, _ in _images()])
def test_pillow_decodes_the_exact_pixels(name, image):
    decoded = np.asarray(Image.open(io.BytesIO(encode_png(image))))
    expected = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
    assert decoded.dtype == np.uint8 and decoded.shape == expected.shape
    np.testing.assert_array_equal(decoded, expected)


def test_tensorflow_decodes_the_exact_pixels():
    tf = pytest.importorskip("tensorflow")
    for _, image in _images():
        decoded = tf.io.decode_png(encode_png(image)).numpy()
        np.testing.assert_array_equal(decoded, image if image.ndim == 3 else image[..., None])


def test_every_compress_level_gives_the_same_pixels_and_level_changes_the_size():
    image = np.tile(np.arange(64, dtype=np.uint8)[None, :, None], (64, 1, 3))
    sizes = []
    for level in range(10):
        data = encode_png(image, level)
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), image)
        sizes.append(len(data))
    assert sizes[0] > sizes[1] >= sizes[9]


def test_chunks_are_well_formed():
    data = encode_png(np.zeros((4, 4, 3), np.uint8))
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, kinds = 8, []
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        assert int.from_bytes(data[pos + 8 + length:pos + 12 + length], "big") == zlib.crc32(kind + body)
        kinds.append(kind)
        pos += 12 + length
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]


@pytest.mark.parametrize("bad,match", [(np.zeros((4, 4), np.float32), "uint8"),
                                       (np.zeros((4, 4, 2), np.uint8), "shape"),
                                       (np.zeros((0, 4, 3), np.uint8), "shape"), (np.zeros(4, np.uint8), "shape")])
def test_bad_input_is_refused_with_the_reason(bad, match):
    with pytest.raises(ValueError, match=match):
        encode_png(bad)


def test_bad_compress_level_is_refused():
    with pytest.raises(ValueError, match="compress_level"):
        encode_png(np.zeros((2, 2, 3), np.uint8), 10)
