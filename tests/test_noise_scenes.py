"""Noise scenes: scene distribution, exact visibility, elongation (Listing 3), Phong shading, examples, layering."""
import colorsys
import io
import math

import numpy as np
import pytest
from PIL import Image

from tfsynth.noise import PerlinNoise, SparseConvolutionNoise
from tfsynth.noise import sparse_convolution as sc
from tfsynth.scenes import dataset
from tfsynth.scenes.config import CLASS_PRIORS, SceneConfig
from tfsynth.scenes.render import render_scene
from tfsynth.scenes.sampling import Scene, elongation_axes, hsl_to_rgb, model_matrix, sample_scene


def _scene(objects, background_scale=5.0):
    """A hand-made scene; objects: dicts with label, center, scale and optional rho, hue, r, kd, ks, shininess."""
    get = lambda key, default: np.array([o.get(key, default) for o in objects], np.float64)  # noqa: E731
    return Scene(
        background_scale=background_scale,
        labels=np.array([o["label"] for o in objects], np.int64),
        centers=np.array([o["center"] for o in objects], np.float64),
        scales=get("scale", 0.5), elongations=get("rho", 0.5), hues=get("hue", 0.0), noise_scales=get("r", 3.0),
        kd=get("kd", 0.5), ks=get("ks", 0.25), shininess=get("shininess", 20.0),
        noise_seeds=np.arange(100, 101 + len(objects), dtype=np.uint64))


def _brute_force_instances(scene, size, distance=2.0):
    """Nearest ray-ellipsoid hit per pixel centre, all objects x all pixels (no screen boxes): 0 or 1 + index."""
    centres = (2 * np.arange(size) + 1) / size - 1
    x, y = np.meshgrid(centres, -centres)  # fov 90: tan(45) = 1; rows run along -y
    rays = np.stack([x, y, -np.ones_like(x)], axis=-1)
    best_t = np.full((size, size), np.inf)
    best = np.zeros((size, size), np.int64)
    eye = np.array([0.0, 0.0, distance])
    for k, (center, axes) in enumerate(zip(scene.centers, scene.semi_axes)):
        o = (eye - center) / axes
        d = rays / axes
        a, b, c = np.sum(d * d, -1), d @ o, o @ o - 1.0
        disc = b * b - a * c
        with np.errstate(invalid="ignore"):
            t = np.where(disc >= 0, (-b - np.sqrt(disc)) / a, np.inf)
        nearer = t < best_t
        best_t[nearer] = t[nearer]
        best[nearer] = k + 1
    return best


# --------------------------------------------------------------------------------------------- scene sampling

def test_scene_distribution_matches_the_seed():
    config = SceneConfig()
    scenes = [sample_scene(config, i) for i in range(400)]
    counts = np.array([s.num_objects for s in scenes])
    assert counts.min() == 1 and counts.max() == 20
    assert np.bincount(counts, minlength=21)[1:].min() > 5  # N ~ U{1..20}
    cat = lambda name: np.concatenate([getattr(s, name) for s in scenes])  # noqa: E731
    labels = cat("labels")
    for name, (low, high) in [("scales", (0.1, 0.7)), ("kd", (0.25, 0.75)), ("ks", (0.0, 0.5)),
                              ("shininess", (10.0, 100.0))]:
        values = cat(name)
        assert values.min() >= low and values.max() <= high and values.max() - values.min() > 0.95 * (high - low)
    centers = np.concatenate([s.centers for s in scenes])
    assert np.all(np.abs(centers[:, :2]) <= 1.5) and np.all(centers[:, 2] == 0.0)
    assert all(1.0 <= s.background_scale <= 20.0 for s in scenes)

    hues, rhos, rs = cat("hues"), cat("elongations"), cat("noise_scales")
    assert hues.min() >= 0.0 and hues.max() < 360.0 and rhos.min() >= 0.0 and rhos.max() <= 1.0 and rs.min() >= 1.0
    frequencies = np.bincount(labels, minlength=4)[1:] / labels.size
    np.testing.assert_allclose(frequencies, 1 / 3, atol=0.04)
    for k, prior in enumerate(CLASS_PRIORS, start=1):
        mine = labels == k
        angles = np.radians(hues[mine])
        mean_hue = math.degrees(math.atan2(np.sin(angles).mean(), np.cos(angles).mean())) % 360
        assert abs((mean_hue - prior.hue + 180) % 360 - 180) < 5.0
        assert rhos[mine].mean() == pytest.approx(prior.elongation, abs=0.006)
        assert rhos[mine].std() == pytest.approx(0.05, rel=0.1)
        assert np.median(rs[mine]) == pytest.approx(prior.noise_scale, abs=0.6)  # the clamp at 1 leaves the median
    assert CLASS_PRIORS[2].hue == 350.0  # class 3: missing from Table 1, the author's code uses 350


def test_scenes_are_pure_functions_of_seed_and_index_and_shared_by_both_noises():
    a, b = sample_scene(SceneConfig(noise="perlin"), 7), sample_scene(SceneConfig(noise="sc"), 7)
    for field in Scene.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    other = sample_scene(SceneConfig(seed=1), 7)
    assert a.num_objects != other.num_objects or not np.array_equal(a.centers, other.centers)
    with pytest.raises(ValueError, match="out of range"):
        sample_scene(SceneConfig(num_train=5, num_validation=0), 5)


def test_hsl_matches_colorsys():
    for hue in [0.0, 30.0, 150.0, 250.0, 350.0, 359.9, -20.0, 400.0]:
        expected = colorsys.hls_to_rgb((hue % 360) / 360.0, 0.5, 1.0)
        np.testing.assert_allclose(hsl_to_rgb(hue, 1.0, 0.5), expected, atol=1e-12)
    np.testing.assert_allclose(hsl_to_rgb([0.0, 120.0, 240.0], 1.0, 0.5), np.eye(3), atol=1e-15)


# -------------------------------------------------------------------------------------------------- geometry

def test_elongation_transform_matches_listing_3():
    # rho = 0.75: sx = 0.75, sy = 0.25, norm = sqrt(2) / sqrt(0.625) = 4 / sqrt(5) -> (3/sqrt(5), 1/sqrt(5), 1).
    np.testing.assert_allclose(elongation_axes(0.75), [3 / math.sqrt(5), 1 / math.sqrt(5), 1.0], rtol=1e-15)
    np.testing.assert_allclose(elongation_axes(0.5), [1.0, 1.0, 1.0], rtol=1e-15)
    # getModel: translate(x, y, 0) * scale(s) * elongation; a hand-computed corner of the unit cube.
    corner = model_matrix((0.2, -0.3, 0.0), 0.5, 0.75) @ np.array([1.0, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(corner, [0.2 + 1.5 / math.sqrt(5), -0.3 + 0.5 / math.sqrt(5), 0.5, 1.0], rtol=1e-15)


def test_rendered_silhouette_of_an_elongated_object_is_exact():
    # An ellipsoid with semi-axes a at the origin, seen from (0, 0, 2) through a 90 degree camera: its outline
    # spans |x_ndc| < a_x / sqrt(4 - a_z^2) on the middle row and |y_ndc| < a_y / sqrt(4 - a_z^2) on the
    # middle column (tangent rays from the eye in the planes y = 0 and x = 0).
    size = 101
    scene = _scene([dict(label=2, center=(0.0, 0.0, 0.0), scale=0.4, rho=0.75)])
    rendering = render_scene(scene, SceneConfig(image_size=size))
    a = 0.4 * np.array([3 / math.sqrt(5), 1 / math.sqrt(5), 1.0])
    pixel_centres = (2 * np.arange(size) + 1) / size - 1
    for axis, half in ((0, a[0] / math.sqrt(4 - a[2] ** 2)), (1, a[1] / math.sqrt(4 - a[2] ** 2))):
        assert np.min(np.abs(np.abs(pixel_centres) - half)) > 1e-6  # no pixel centre on the outline
        line = rendering.label[size // 2, :] if axis == 0 else rendering.label[:, size // 2]
        assert np.count_nonzero(line) == np.count_nonzero(np.abs(pixel_centres) < half)
    assert set(np.unique(rendering.label)) == {0, 2}
    assert np.count_nonzero(rendering.label[size // 2]) > 2.5 * np.count_nonzero(rendering.label[:, size // 2])


def test_nearest_surface_wins_for_intersecting_and_nested_objects():
    size = 65
    config = SceneConfig(image_size=size)
    # Two unit-radius-0.5 spheres intersecting at z = 0: on the middle row, A (x = 0) is nearer at the centre
    # (front at z = 0.5, t = 1.5; B's surface there is at z = 0.4, t = 1.6), B wins where its front bulges.
    a = dict(label=1, center=(0.0, 0.0, 0.0), scale=0.5)
    b = dict(label=2, center=(0.3, 0.0, 0.0), scale=0.5)
    rendering = render_scene(_scene([a, b]), config)
    assert rendering.instance[32, 32] == 1 and rendering.label[32, 32] == 1
    assert rendering.depth[32, 32] == pytest.approx(1.5, abs=1e-12)
    assert rendering.instance[32, 38] == 2 and rendering.label[32, 38] == 2  # ray towards B's front (0.3, 0, 0.5)
    np.testing.assert_array_equal(rendering.instance, _brute_force_instances(_scene([a, b]), size))
    swapped = render_scene(_scene([b, a]), config)
    np.testing.assert_array_equal(swapped.label, rendering.label)
    np.testing.assert_array_equal(swapped.instance, np.array([0, 2, 1], np.uint8)[rendering.instance])

    # A small sphere in front of a big one behind it: the small one's whole outline shows, in either order.
    small = dict(label=3, center=(0.1, -0.1, 0.6), scale=0.2)
    big = dict(label=1, center=(0.0, 0.0, -0.5), scale=0.8)
    for order in ([small, big], [big, small]):
        rendering = render_scene(_scene(order), config)
        np.testing.assert_array_equal(rendering.instance, _brute_force_instances(_scene(order), size))
        alone = render_scene(_scene([small]), config).label == 3
        assert alone.sum() > 50
        assert np.all(rendering.label[alone] == 3)
        assert np.all(rendering.label[~alone & (render_scene(_scene([big]), config).label == 1)] == 1)


@pytest.mark.parametrize("noise", ["perlin", "sc"])
def test_visibility_equals_brute_force_on_sampled_scenes(noise):
    config = SceneConfig(noise=noise, image_size=96)
    for index in range(8):
        scene = sample_scene(config, index)
        rendering = render_scene(scene, config)
        np.testing.assert_array_equal(rendering.instance, _brute_force_instances(scene, 96))


# ---------------------------------------------------------------------------------------------------- shading

def test_phong_on_a_hand_computed_pixel():
    # Sphere r = 0.5 at the origin, red (hue 0), kd 0.5, ks 0.25, noise scale 3. The middle pixel of a 33 x 33
    # image looks straight down -z: hit (0, 0, 0.5), normal (0, 0, 1), light (0, 0, 3) and eye on the axis:
    # d = 1, n.w_h = 1. Perlin noise at 3 * n = (0, 0, 3), a lattice point: 0, so I = 0.5.
    # colour = Le (kd d I + ka + ks) = (1, 0, 0) * (0.25 + 0.1 + 0.25) = (0.6, 0, 0) -> (153, 0, 0).
    config = SceneConfig(image_size=33)
    scene = _scene([dict(label=1, center=(0.0, 0.0, 0.0), scale=0.5, hue=0.0, kd=0.5, ks=0.25, shininess=20.0,
                         r=3.0)])
    rendering = render_scene(scene, config)
    np.testing.assert_allclose(rendering.radiance[16, 16], [0.6, 0.0, 0.0], atol=1e-12)
    np.testing.assert_array_equal(rendering.image[16, 16], [153, 0, 0])


@pytest.mark.parametrize("noise", ["perlin", "sc"])
def test_phong_and_noise_on_an_off_axis_pixel(noise):
    config = SceneConfig(image_size=33, noise=noise)
    obj = dict(label=2, center=(0.1, 0.05, 0.0), scale=0.5, rho=0.6, hue=200.0, kd=0.6, ks=0.4, shininess=15.0,
               r=7.3)
    scene = _scene([obj], background_scale=4.0)
    rendering = render_scene(scene, config)
    noise_fn = (lambda s: PerlinNoise(seed=s)) if noise == "perlin" else (lambda s: SparseConvolutionNoise(seed=s))
    sc_std = lambda dim: math.sqrt(sc.theoretical_variance(dim, 16.0, 0.5))  # noqa: E731
    gain = (lambda dim: 1.0) if noise == "perlin" else (lambda dim: 0.15 / sc_std(dim))

    # Step by step, for pixel (row 14, column 19).
    i, j = 14, 19
    x, y = (2 * j + 1) / 33 - 1, 1 - (2 * i + 1) / 33
    eye, ray = np.array([0.0, 0.0, 2.0]), np.array([x, y, -1.0])
    center = np.array(obj["center"])
    rho = obj["rho"]
    norm = math.sqrt(2) / math.hypot(rho, 1 - rho)
    axes = obj["scale"] * np.array([rho * norm, (1 - rho) * norm, 1.0])
    o, d = (eye - center) / axes, ray / axes
    qa, qb, qc = d @ d, 2 * (o @ d), o @ o - 1
    t = (-qb - math.sqrt(qb * qb - 4 * qa * qc)) / (2 * qa)
    p = eye + t * ray
    n = (p - center) / axes ** 2
    n /= np.linalg.norm(n)
    intensity = 0.5 * gain(3) * float(noise_fn(101)(obj["r"] * n)) + 0.5
    unit = lambda v: v / np.linalg.norm(v)  # noqa: E731
    w_i, w_o = unit(np.array([0.0, 0.0, 3.0]) - p), unit(eye - p)
    w_h = unit(w_i + w_o)
    factor = obj["kd"] * max(n @ w_i, 0) * intensity + 0.1 + obj["ks"] * max(n @ w_h, 0) ** obj["shininess"]
    le = np.array(colorsys.hls_to_rgb(200 / 360, 0.5, 1.0))
    assert rendering.instance[i, j] == 1
    np.testing.assert_allclose(rendering.radiance[i, j], le * factor, rtol=1e-10, atol=1e-12)

    # A background pixel (row 1, column 2): grey 0.5 * noise2(b * (x, y)) + 0.5 with the background's seed.
    i, j = 1, 2
    x, y = (2 * j + 1) / 33 - 1, 1 - (2 * i + 1) / 33
    grey = 0.5 * gain(2) * float(noise_fn(100)(4.0 * np.array([x, y]))) + 0.5
    assert rendering.instance[i, j] == 0
    np.testing.assert_allclose(rendering.radiance[i, j], [grey] * 3, rtol=1e-10, atol=1e-12)


def test_reference_noise_uses_one_fixed_field():
    config = SceneConfig(image_size=33, reference_noise=True)
    scene = _scene([dict(label=1, center=(0.0, 0.0, 0.0), scale=0.5, r=7.3)])
    i, j = 16, 25  # background
    x, y = (2 * j + 1) / 33 - 1, 1 - (2 * i + 1) / 33
    rendering = render_scene(scene, config)
    assert rendering.instance[i, j] == 0
    assert rendering.radiance[i, j, 0] == pytest.approx(0.5 * float(PerlinNoise()(5.0 * np.array([x, y]))) + 0.5,
                                                        abs=1e-12)


# ---------------------------------------------------------------------------------------------------- examples

@pytest.mark.parametrize("noise", ["perlin", "sc"])
def test_label_instance_and_objects_agree(noise):
    config = SceneConfig(noise=noise, image_size=64)
    for index in range(6):
        ex = dataset.example(config, index)
        label, instance, objects = ex["label"][..., 0], ex["instance"][..., 0], ex["objects"]
        n = objects["label"].shape[0]
        assert ex["image"].shape == (64, 64, 3) and ex["image"].dtype == np.uint8
        assert label.dtype == np.uint8 and instance.dtype == np.uint8
        assert set(np.unique(label)) <= {0, 1, 2, 3} and instance.max() <= n
        lookup = np.concatenate([[0], objects["label"]])
        np.testing.assert_array_equal(label, lookup[instance])
        np.testing.assert_array_equal(objects["area"], np.bincount(instance.ravel(), minlength=n + 1)[1:])
        background = ex["image"][instance == 0]
        assert np.all(background[:, 0] == background[:, 1]) and np.all(background[:, 1] == background[:, 2])
        for key in ("center", "semi_axes"):
            assert objects[key].shape == (n, 3) and objects[key].dtype == np.float32
        for key in ("scale", "elongation", "hue", "noise_scale", "kd", "ks", "shininess"):
            assert objects[key].shape == (n,) and objects[key].dtype == np.float32
        assert ex["index"] == index and 1.0 <= ex["background_scale"] <= 20.0


def test_examples_are_deterministic_and_encode_losslessly():
    config = SceneConfig(noise="sc", image_size=48, num_train=10, num_validation=2)
    first = dataset.example(config, 3)
    dataset.example(config, 9)  # whatever was rendered before must not matter
    again = dataset.example(config, 3)
    for key in ("image", "label", "instance"):
        np.testing.assert_array_equal(first[key], again[key])
    for key in first["objects"]:
        np.testing.assert_array_equal(first["objects"][key], again["objects"][key])
    key, encoded = dataset.encoded_example(config, 3)
    assert key == "000003"
    for name in ("image", "label", "instance"):
        decoded = np.array(Image.open(io.BytesIO(encoded[name])))
        np.testing.assert_array_equal(decoded.reshape(first[name].shape), first[name])
    assert list(dataset.split_indices(config, "train")) == list(range(10))
    assert list(dataset.split_indices(config, "validation")) == [10, 11]
    perlin = dataset.example(SceneConfig(noise="perlin", image_size=48, num_train=10, num_validation=2), 3)
    np.testing.assert_array_equal(perlin["instance"], first["instance"])  # same scene, other texture
    assert not np.array_equal(perlin["image"], first["image"])
    assert [k for k, _ in dataset.generate(config, "validation")] == ["000010", "000011"]


def test_config_validation():
    with pytest.raises(ValueError, match="noise 'simplex' unknown"):
        SceneConfig(noise="simplex")
    with pytest.raises(ValueError, match="max_objects"):
        SceneConfig(max_objects=300)
    with pytest.raises(ValueError, match="camera_distance"):
        SceneConfig(camera_distance=0.5)
    with pytest.raises(ValueError, match="unknown split"):
        dataset.split_indices(SceneConfig(), "test")
    assert SceneConfig().num_classes == 4 and SceneConfig().num_examples == 10_000
