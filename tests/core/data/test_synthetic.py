import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.data.rle import rle_decode
from core.data.synthetic import make_image, write_synthetic

SMALL = {"n_train": 16, "n_test": 8, "height": 64, "width": 256}


def _read_images(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(folder.iterdir())}


def _contrast(image: np.ndarray, mask: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    """Mean |image - background| inside mask and on clean pixels.

    The background is constant down a column apart from noise, so the column median over clean pixels
    is a defect-free estimate of it.
    """
    values = np.where(clean, image.astype(np.float64), np.nan)
    usable = clean.any(axis=0)  # columns with at least one clean pixel
    background = np.nanmedian(values[:, usable], axis=0)
    diff = np.abs(image[:, usable] - background[None, :])
    return float(diff[mask[:, usable] > 0].mean()), float(diff[clean[:, usable]].mean())


@pytest.fixture(scope="module")
def drawn() -> list[tuple[np.ndarray, np.ndarray]]:
    return [make_image(np.random.default_rng([7, i]), 64, 256) for i in range(200)]


def test_make_image_types_and_shapes(drawn):
    image, masks = drawn[0]
    assert image.shape == (64, 256) and image.dtype == np.uint8
    assert masks.shape == (4, 64, 256) and masks.dtype == np.uint8
    assert set(np.unique(masks)) <= {0, 1}
    assert 100 <= np.mean([img.mean() for img, _ in drawn]) <= 145


def test_class_frequencies_follow_severstal(drawn):
    present = np.array([m.reshape(4, -1).any(axis=1) for _, m in drawn])
    per_class = present.sum(axis=0)
    clean = 1 - present.any(axis=1).mean()
    assert 0.35 <= clean <= 0.65
    assert per_class.argmax() == 2, per_class  # class 3 dominant
    assert per_class.argmin() == 1, per_class  # class 2 rare
    assert 0.02 <= per_class[1] / len(drawn) <= 0.10


def test_every_present_class_covers_at_least_20_pixels(drawn):
    sizes = np.array([m.reshape(4, -1).sum(axis=1) for _, m in drawn])
    assert ((sizes == 0) | (sizes >= 20)).all(), sizes[(sizes > 0) & (sizes < 20)]


@pytest.mark.parametrize("cls", [1, 2, 3, 4])
def test_defects_alter_the_pixels_under_their_mask(drawn, cls):
    with_cls = [(img, m) for img, m in drawn if m[cls - 1].any()]
    assert with_cls, f"no image with class {cls} among {len(drawn)}"
    for image, masks in with_cls:
        inside, outside = _contrast(image, masks[cls - 1], masks.max(axis=0) == 0)
        assert inside > outside + 15, (cls, inside, outside)


def test_write_is_deterministic_and_seeded(tmp_path):
    a = write_synthetic(tmp_path / "a", seed=3, **SMALL)
    b = write_synthetic(tmp_path / "b", seed=3, **SMALL)
    c = write_synthetic(tmp_path / "c", seed=4, **SMALL)
    for name in ("train.csv", "test_truth.csv", "sample_submission.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    for folder in ("train_images", "test_images"):
        images_a, images_b = _read_images(a / folder), _read_images(b / folder)
        assert images_a.keys() == images_b.keys()
        assert all(np.array_equal(images_a[k], images_b[k]) for k in images_a)
    train_a, train_c = _read_images(a / "train_images"), _read_images(c / "train_images")
    assert train_c.keys() == train_a.keys()
    assert not any(np.array_equal(train_c[k], train_a[k]) for k in train_c)
    assert (c / "train.csv").read_bytes() != (a / "train.csv").read_bytes()


def test_written_rows_decode_to_altered_regions(tmp_path):
    root = write_synthetic(tmp_path / "data", seed=1, **SMALL)
    lines = (root / "train.csv").read_text().splitlines()
    assert lines[0] == "ImageId,ClassId,EncodedPixels"
    rows = [line.split(",") for line in lines[1:]]
    images = {}
    for name, _, _ in rows:
        images[name] = cv2.imread(str(root / "train_images" / name), cv2.IMREAD_UNCHANGED)
    assert 3 <= len(images) <= 13  # about half of 16 images have a defect
    assert images[rows[0][0]].shape == (64, 256, 3)  # grey stored as three equal channels
    masks = {name: np.zeros((64, 256), np.uint8) for name in images}
    decoded = [(name, rle_decode(rle, (64, 256), order="F")) for name, cls, rle in rows]
    for name, mask in decoded:
        masks[name] |= mask
    for name, mask in decoded:
        assert mask.sum() >= 20
        inside, outside = _contrast(images[name][..., 0], mask, masks[name] == 0)
        assert inside > outside + 10, (name, inside, outside)
    assert {int(cls) for _, cls, _ in rows} <= {1, 2, 3, 4}


def test_test_split_and_sample_submission(tmp_path):
    root = write_synthetic(tmp_path / "data", seed=2, **SMALL)
    names = sorted(p.name for p in (root / "test_images").iterdir())
    assert len(names) == SMALL["n_test"]
    assert not set(names) & {p.name for p in (root / "train_images").iterdir()}
    lines = (root / "sample_submission.csv").read_text().splitlines()
    assert lines[0] == "ImageId,EncodedPixels,ClassId"
    assert lines[1:] == [f"{name},1 1,{cls}" for name in names for cls in (1, 2, 3, 4)]
    truth = (root / "test_truth.csv").read_text().splitlines()
    assert truth[0] == "ImageId,ClassId,EncodedPixels"
    assert {line.split(",")[0] for line in truth[1:]} <= set(names)


def test_same_parameters_reuse_the_folder(tmp_path):
    root = write_synthetic(tmp_path / "data", seed=5, **SMALL)
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    assert write_synthetic(tmp_path / "data", seed=5, **SMALL) == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == stamps
    before = (root / "train.csv").read_bytes()
    write_synthetic(tmp_path / "data", seed=6, **SMALL)
    assert (root / "train.csv").read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no temp folders left


def test_refuses_to_replace_a_folder_that_is_not_synthetic(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.csv").write_text("mine\n")
    with pytest.raises(ValueError, match=r"not empty and holds no synthetic\.json"):
        write_synthetic(tmp_path / "data", **SMALL)
    assert (tmp_path / "data" / "train.csv").read_text() == "mine\n"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_train": 3}, "n_train must be an integer >= 8, got 3"),
        ({"n_test": 0}, "n_test must be an integer >= 1, got 0"),
        ({"height": 100}, "height must be an integer >= 64 and a multiple of 32, got 100"),
        ({"width": 32}, "width must be an integer >= 64 and a multiple of 32, got 32"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
        ({"n_train": 8.5}, "n_train must be an integer >= 8, got 8.5"),
    ],
)
def test_invalid_arguments_state_the_rule(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        write_synthetic(tmp_path / "data", **{**SMALL, **kwargs})
    assert not (tmp_path / "data").exists()
