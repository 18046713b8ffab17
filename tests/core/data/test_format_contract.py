"""Every registered format through one suite, each on real public data (skipped when it is absent).

Like Optuna's sampler suite: a new format adds one builder to ``REAL`` and gets every check.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from shared_data import shared

import core.data  # noqa: F401  (registers the formats)
from core.data.folds import make_folds
from core.data.formats import DataFormat, get_format, list_formats
from core.data.problems import Problems
from core.data.rle import rle_encode
from core.data.severstal import read_label_rows


def _severstal(tmp: Path) -> tuple[Path, dict]:
    """The 10 real images with real rows of train.csv's head, in the final layout."""
    real = shared("severstal_real")
    rows = read_label_rows(real / "train_csv_head_PiotrWegrzyn" / "train_head.csv")
    images = real / "train_images_contour_overlay_RocioLiu"
    present = sorted(p.name for p in images.glob("*.jpg"))
    (tmp / "train_images").mkdir(parents=True)
    for name in present:
        (tmp / "train_images" / name).symlink_to(images / name)
    rows = rows[rows["ImageId"].isin(present) & (rows["EncodedPixels"] != "")]
    rows[["ImageId", "ClassId", "EncodedPixels"]].to_csv(tmp / "train.csv", index=False)
    return tmp, {}


def _neu_seg(tmp: Path) -> tuple[Path, dict]:
    """40 real NEU-Seg images (every 33rd, so all three classes show) with index masks (0 background, 1..3)."""
    real = shared("neu_seg")
    for sub in ("images", "masks"):
        (tmp / sub).mkdir(parents=True)
    for path in sorted((real / "images").glob("*.jpg"))[::33][:40]:
        (tmp / "images" / path.name).symlink_to(path)
        (tmp / "masks" / f"{path.stem}.png").symlink_to(real / "masks" / f"{path.stem}.png")
    return tmp, {}


def _isbi(tmp: Path) -> tuple[Path, dict]:
    """The 30 real ISBI 2012 membrane images with {0,255} labels."""
    real = shared("isbi2012_membrane", "train")
    return real, {"image_dir": "image", "mask_dir": "label"}


def _neu_det(tmp: Path) -> tuple[Path, dict]:
    """300 real NEU-DET images, the class in the file-name prefix."""
    return shared("neu_det_cls", "IMAGES"), {}


def _carvana(tmp: Path) -> tuple[Path, dict]:
    """12 real Carvana image + mask pairs (resized to 720x480), as train/ + train_masks.csv (row-major RLE)."""
    real = shared("carvana_real", "resized_720x480_Cory0726")
    (tmp / "train").mkdir(parents=True)
    rows = []
    for path in sorted((real / "imgs").glob("*.png")):
        (tmp / "train" / path.name).symlink_to(path)
        mask = np.array(Image.open(real / "masks" / f"{path.stem}_mask.png").convert("L"))
        rows.append((path.name, rle_encode(mask, "C")))
    pd.DataFrame(rows, columns=["img", "rle_mask"]).to_csv(tmp / "train_masks.csv", index=False)
    return tmp, {}


def _synthetic(tmp: Path) -> tuple[Path, dict]:
    return tmp / "synthetic", {"images": 8}


# format -> (builder, expected: images, classes, kind)
REAL = {
    "severstal": (_severstal, 10, 4),
    "folder": (_neu_seg, 40, 3),
    "folder-isbi": (_isbi, 30, 1),
    "classes": (_neu_det, 300, 6),
    "carvana": (_carvana, 12, 1),
    "synthetic": (_synthetic, 8, 4),
}


def test_every_registered_format_has_a_real_case():
    assert {name.split("-")[0] for name in REAL} == set(list_formats())


@pytest.fixture(params=sorted(REAL), scope="module")
def case(request, tmp_path_factory):
    name = request.param
    build, images, classes = REAL[name]
    fmt: DataFormat = get_format(name.split("-")[0])
    root, options = build(tmp_path_factory.mktemp(name))
    data = fmt.read(root, fmt.parse_options(options), Problems())
    return fmt, data, images, classes


def test_protocol_attributes(case):
    fmt, data, _, _ = case
    assert fmt.kind in ("segmentation", "classification") and fmt.kind == data.kind
    assert fmt.order in ("F", "C") and data.order == fmt.order
    assert fmt.description and isinstance(fmt.option_names(), list)
    assert data.format == fmt.name


def test_image_ids_and_reading(case):
    _, data, images, classes = case
    assert len(data) == images and data.num_classes == classes
    assert data.image_ids == sorted(data.image_ids) and len(set(data.image_ids)) == len(data.image_ids)
    for image_id in data.image_ids[:3]:
        image = data.read_image(image_id)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert image.shape[:2] == data.image_shape(image_id)


def test_masks_or_labels_and_presence(case):
    _, data, _, classes = case
    labels = data.labels()
    assert labels.shape == (len(data), classes) and set(np.unique(labels)) <= {0, 1}
    if data.kind == "classification":
        assert (labels.sum(axis=1) == 1).all() and len(data.class_names) == classes
        return
    assert labels.any()
    for i, image_id in enumerate(data.image_ids[:6]):
        masks = data.masks(image_id)
        assert masks.shape == (classes, *data.image_shape(image_id)) and masks.dtype == np.uint8
        assert set(np.unique(masks)) <= {0, 1}
        np.testing.assert_array_equal(masks.any(axis=(1, 2)).astype(int), labels[i])


def test_folds_from_presence_labels(case):
    _, data, _, _ = case
    folds = make_folds(data.image_ids, data.labels(), 2, 0, single_label=data.kind == "classification")
    assert sorted(folds["image_id"]) == data.image_ids and set(folds["fold"]) == {0, 1}


def test_unknown_option_names_the_valid_ones(case):
    fmt, _, _, _ = case
    with pytest.raises(ValueError, match=rf"data\.nope is not an option of data format '{fmt.name}'; its options: "):
        fmt.parse_options({"nope": 1})


def test_missing_folder_is_one_line(case, tmp_path):
    fmt, _, _, _ = case
    if fmt.default_root(tmp_path, fmt.parse_options({})) is not None:
        pytest.skip("a generated format makes its folder")
    with pytest.raises((FileNotFoundError, ValueError)) as info:
        fmt.read(tmp_path / "absent", fmt.parse_options({}), Problems())
    assert str(tmp_path / "absent") in str(info.value) and "\n" not in str(info.value)


def test_carvana_gif_masks_read_like_the_csv(tmp_path):
    real = shared("carvana_real", "resized_720x480_Cory0726")
    root, _ = _carvana(tmp_path / "csv")
    (tmp_path / "gif" / "train_masks").mkdir(parents=True)
    shutil.copytree(root / "train", tmp_path / "gif" / "train", symlinks=True)
    for path in sorted((real / "masks").glob("*.png")):
        Image.open(path).convert("L").point(lambda v: 255 if v > 127 else 0).save(tmp_path / "gif" / "train_masks" / f"{path.stem}.gif")
    fmt = get_format("carvana")
    from_csv = fmt.read(root, fmt.parse_options({}), Problems())
    from_gif = fmt.read(tmp_path / "gif", fmt.parse_options({}), Problems())
    assert from_csv.image_ids == from_gif.image_ids
    for image_id in from_csv.image_ids[:4]:
        np.testing.assert_array_equal(from_csv.masks(image_id), from_gif.masks(image_id))
        assert 0.10 < from_csv.masks(image_id).mean() < 0.25  # the car covers 13-21% of each


def test_python_m_trainables_data_lists_every_format_with_its_options():
    from trainables.data.__main__ import describe

    text = describe()
    for name in list_formats():
        fmt = get_format(name)
        assert f"\n  {name}  [{fmt.kind}" in text
        for key, _, help_text in fmt.describe_options():
            assert key in text and help_text in text
    assert "data.images" in text and "default <storage>/_data/synthetic-96" in text


def test_severstal_images_of_mixed_sizes(tmp_path):
    from core.data.severstal import read_severstal

    (tmp_path / "train_images").mkdir()
    Image.fromarray(np.zeros((8, 6, 3), np.uint8)).save(tmp_path / "train_images" / "a.png")
    Image.fromarray(np.zeros((4, 10, 3), np.uint8)).save(tmp_path / "train_images" / "b.png")
    Image.fromarray(np.zeros((8, 6, 3), np.uint8)).save(tmp_path / "train_images" / "c.png")
    (tmp_path / "train.csv").write_text("ImageId,ClassId,EncodedPixels\na.png,1,45 4\nb.png,2,37 4\n")
    data = read_severstal(tmp_path)
    assert data.shape == (8, 6)  # the most common size: the reference for the training size
    assert data.masks("b.png").shape == (4, 4, 10) and data.masks("b.png")[1, :, 9].sum() == 4
    assert data.masks("a.png")[0, 4:, 5].sum() == 4
    (tmp_path / "train.csv").write_text("ImageId,ClassId,EncodedPixels\nb.png,1,45 4\n")
    with pytest.raises(ValueError, match=r"train.csv:2: bad EncodedPixels for b.png class 1: RLE run ends at pixel 48, outside the image of 40 pixels"):
        read_severstal(tmp_path)


def test_classes_folds_are_stratified_on_the_class():
    fmt = get_format("classes")
    data = fmt.read(shared("neu_det_cls", "IMAGES"), fmt.parse_options({}), Problems())
    folds = make_folds(data.image_ids, data.labels(), 5, 0, single_label=True)
    per_fold = pd.crosstab(folds["fold"], [data.class_names[data.labels_by_id[i]] for i in folds["image_id"]])
    assert (per_fold.to_numpy() == 10).all()  # 50 per class over 5 folds: exactly 10 each
