import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from shared_data import shared_root

from core.data.formats import get_format, list_formats
from core.data.rle import rle_encode
from core.data.severstal import read_label_rows, read_severstal
from core.data.synthetic import read_synthetic

DATA = shared_root() / "severstal_real"
HEAD_CSV = DATA / "train_csv_head_PiotrWegrzyn" / "train_head.csv"
OVERLAY_IMAGES = DATA / "train_images_contour_overlay_RocioLiu"

HEIGHT, WIDTH = 8, 6  # 48 pixels
IMAGES = ("a.png", "b.jpg", "c.png")  # c.png is clean
# (image, 1-based class) -> RLE, column-major over 8 x 6
DEFECTS = {("a.png", 1): "1 3", ("a.png", 3): "10 2 20 4", ("b.jpg", 2): "41 8"}


def _write_images(root: Path, names=IMAGES) -> None:
    folder = root / "train_images"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in names:
        cv2.imwrite(str(folder / name), rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8))


def _final_layout(defects=DEFECTS) -> str:
    """`ImageId,ClassId,EncodedPixels`, defective rows only (the competition's final train.csv)."""
    rows = [f"{image},{c},{rle}" for (image, c), rle in defects.items()]
    return "\n".join(["ImageId,ClassId,EncodedPixels", *rows]) + "\n"


def _first_layout(defects=DEFECTS, images=IMAGES) -> str:
    """`ImageId_ClassId,EncodedPixels`, every pair, empty cells for no defect (the first train.csv)."""
    rows = [f"{image}_{c},{defects.get((image, c), '')}" for image in images for c in range(1, 5)]
    return "\n".join(["ImageId_ClassId,EncodedPixels", *rows]) + "\n"


def _folder(tmp_path: Path, csv_text: str) -> Path:
    _write_images(tmp_path)
    (tmp_path / "train.csv").write_text(csv_text)
    return tmp_path


def _error(root: Path, line: int | None, text: str) -> str:
    where = f"{root / 'train.csv'}" + (f":{line}" if line is not None else "")
    return re.escape(where) + ": " + text


@pytest.mark.parametrize("layout", [_final_layout, _first_layout])
def test_both_layouts_read_the_same(tmp_path, layout):
    data = read_severstal(_folder(tmp_path, layout()))
    assert data.image_ids == ["a.png", "b.jpg", "c.png"]
    assert len(data) == 3 and data.num_classes == 4 and data.order == "F"
    assert data.shape == (HEIGHT, WIDTH)
    assert data.rles == {("a.png", 0): "1 3", ("a.png", 2): "10 2 20 4", ("b.jpg", 1): "41 8"}
    np.testing.assert_array_equal(data.labels(), [[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]])
    assert data.test_dir is None and data.sample_submission is None


def test_masks_and_images(tmp_path):
    data = read_severstal(_folder(tmp_path, _final_layout()))
    masks = data.masks("a.png")
    assert masks.shape == (4, HEIGHT, WIDTH) and masks.dtype == np.uint8
    assert masks.sum(axis=(1, 2)).tolist() == [3, 0, 6, 0]
    assert masks[0, :3, 0].tolist() == [1, 1, 1] and masks[0, 3:, 0].sum() == 0  # top of column 0
    assert rle_encode(masks[2]) == "10 2 20 4"
    assert data.masks("b.jpg")[1, :, 5].tolist() == [1] * HEIGHT  # the last column
    assert data.masks("c.png").sum() == 0
    image = data.read_image("c.png")
    assert image.shape == (HEIGHT, WIDTH, 3) and image.dtype == np.uint8


def test_test_images_and_sample_submission_are_found(tmp_path):
    root = _folder(tmp_path, _final_layout())
    (root / "test_images").mkdir()
    (root / "sample_submission.csv").write_text("ImageId,EncodedPixels,ClassId\n")
    data = read_severstal(root)
    assert data.test_dir == root / "test_images"
    assert data.sample_submission == root / "sample_submission.csv"


def test_images_without_rows_are_clean_training_images(tmp_path):
    data = read_severstal(_folder(tmp_path, "ImageId,ClassId,EncodedPixels\n"))
    assert data.image_ids == list(IMAGES) and data.rles == {}
    assert data.labels().sum() == 0 and data.shape == (HEIGHT, WIDTH)


def test_blank_lines_are_skipped_but_counted(tmp_path):
    text = "ImageId,ClassId,EncodedPixels\na.png,1,1 3\n\n\nb.jpg,9,1 1\n\n"
    root = _folder(tmp_path, text)
    with pytest.raises(ValueError, match=_error(root, 5, "ClassId must be in 1..4, got 9")):
        read_severstal(root)
    (root / "train.csv").write_text("ImageId,ClassId,EncodedPixels\na.png,1,1 3\n\n")
    assert read_severstal(root).rles == {("a.png", 0): "1 3"}


@pytest.mark.parametrize(
    ("csv_text", "line", "message"),
    [
        (
            "ImageId,Class,EncodedPixels\na.png,1,1 3\n",
            None,
            "expected columns ImageId,ClassId,EncodedPixels or ImageId_ClassId,EncodedPixels, "
            "got ImageId,Class,EncodedPixels",
        ),
        (
            "ImageId,ClassId,EncodedPixels\na.png,1,1 3\nb.jpg,two,1 3\n",
            3,
            "ClassId must be a positive integer, got 'two'",
        ),
        ("ImageId_ClassId,EncodedPixels\na.png_1,\na.png_x,1 3\n", 3, "ClassId must be a positive integer, got 'x'"),
        (
            "ImageId_ClassId,EncodedPixels\na.png,1 3\n",
            2,
            "ImageId_ClassId must look like '<image>_<class>', got 'a.png'",
        ),
        ("ImageId,ClassId,EncodedPixels\na.png,5,1 3\n", 2, "ClassId must be in 1..4, got 5"),
        ("ImageId,ClassId,EncodedPixels\na.png,0,1 3\n", 2, "ClassId must be in 1..4, got 0"),
        (
            "ImageId,ClassId,EncodedPixels\na.png,1,1 3\na.png,2,1 3 5\n",
            3,
            "bad EncodedPixels for a.png class 2: RLE must have an even count of numbers",
        ),
        (
            "ImageId,ClassId,EncodedPixels\nb.jpg,4,47 3\n",
            2,
            "bad EncodedPixels for b.jpg class 4: RLE run ends at pixel 49, outside the image of 48 pixels",
        ),
        (
            "ImageId,ClassId,EncodedPixels\na.png,1,1 3\nb.jpg,1,5 1\na.png,1,9 3\n",
            4,
            "second row for a.png class 1 (first on line 2); expected one row per pair",
        ),
        (
            "ImageId_ClassId,EncodedPixels\na.png_1,\na.png_2,\na.png_1,\n",
            4,
            "second row for a.png class 1 (first on line 2)",
        ),
    ],
)
def test_bad_rows_are_one_line_errors_naming_file_and_line(tmp_path, csv_text, line, message):
    root = _folder(tmp_path, csv_text)
    with pytest.raises(ValueError, match=_error(root, line, re.escape(message))) as info:
        read_severstal(root)
    assert "\n" not in str(info.value)


def test_row_naming_a_missing_image(tmp_path):
    root = _folder(tmp_path, "ImageId,ClassId,EncodedPixels\na.png,1,1 3\nzzz.jpg,2,1 3\n")
    message = _error(root, 3, "image zzz.jpg not found in " + re.escape(str(root / "train_images")))
    with pytest.raises(FileNotFoundError, match=message):
        read_severstal(root)


def test_missing_files_and_empty_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path / 'train.csv'}: label file not found")):
        read_severstal(tmp_path)
    (tmp_path / "train.csv").write_text("ImageId,ClassId,EncodedPixels\n")
    with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path / 'train_images'}: image folder not found")):
        read_severstal(tmp_path)
    (tmp_path / "train_images").mkdir()
    (tmp_path / "train_images" / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="no images"):
        read_severstal(tmp_path)


def test_real_first_layout_rows():
    if not HEAD_CSV.is_file():
        pytest.skip(f"real Severstal train.csv head not found at {HEAD_CSV}")
    rows = read_label_rows(HEAD_CSV)
    assert list(rows.columns) == ["ImageId", "ClassId", "EncodedPixels", "line"]
    assert len(rows) == 72 and rows["ImageId"].nunique() == 18
    assert rows["ClassId"].tolist() == [1, 2, 3, 4] * 18
    assert rows["line"].tolist() == list(range(2, 74))
    assert rows["ImageId"].iloc[0] == "0002cc93b.jpg"
    assert rows["EncodedPixels"].iloc[0].startswith("29102 12 29346 24")
    assert (rows["EncodedPixels"] != "").sum() == 12


def test_real_images_in_both_layouts(tmp_path):
    """The real head of train.csv over the 10 real images it labels, rewritten in the final layout."""
    if not HEAD_CSV.is_file() or not OVERLAY_IMAGES.is_dir():
        pytest.skip(f"real Severstal rows or images not found under {DATA}")
    rows = read_label_rows(HEAD_CSV)
    present = sorted(p.name for p in OVERLAY_IMAGES.glob("*.jpg"))
    rows = rows[rows["ImageId"].isin(present)]
    results = []
    for layout in ("first", "final"):
        root = tmp_path / layout
        (root / "train_images").mkdir(parents=True)
        for name in present:
            (root / "train_images" / name).symlink_to(OVERLAY_IMAGES / name)
        if layout == "first":
            table = pd.DataFrame({"ImageId_ClassId": rows["ImageId"] + "_" + rows["ClassId"].astype(str)})
            table["EncodedPixels"] = rows["EncodedPixels"].to_numpy()
        else:
            table = rows[rows["EncodedPixels"] != ""][["ImageId", "ClassId", "EncodedPixels"]]
        table.to_csv(root / "train.csv", index=False)
        results.append(read_severstal(root))
    first, final = results
    assert first.image_ids == final.image_ids == present
    assert first.rles == final.rles and len(first.rles) == 12
    assert first.shape == (256, 1600)
    np.testing.assert_array_equal(first.labels(), final.labels())
    assert first.labels().sum(axis=0).tolist() == [3, 1, 4, 4]
    assert all(first.masks(image_id).any() for image_id in present)  # every image here has a defect


def test_registry_lists_the_options():
    assert {"carvana", "classes", "folder", "severstal", "synthetic"} <= set(list_formats())
    assert get_format("severstal").name == "severstal" and get_format("synthetic").order == "F"
    with pytest.raises(ValueError, match=r"Unknown data format 'nope'\. Available options are: .*severstal, synthetic"):
        get_format("nope")


def test_synthetic_needs_four_classes(tmp_path):
    with pytest.raises(ValueError, match=r"data\.classes must be 4 for the synthetic steel set, got 3"):
        read_synthetic(tmp_path / "synthetic", num_classes=3)
    assert not (tmp_path / "synthetic").exists()


def test_read_synthetic(tmp_path):
    """One small generated set (256 x 1600 images), read back through the Severstal reader."""
    data = read_synthetic(tmp_path / "synthetic", images=8, seed=3)
    assert len(data) == 8 and data.shape == (256, 1600) and data.num_classes == 4
    assert data.labels().shape == (8, 4) and data.labels().sum() > 0
    first = data.image_ids[0]
    assert data.read_image(first).shape == (256, 1600, 3)
    assert data.masks(first).shape == (4, 256, 1600)
    again = read_synthetic(tmp_path / "synthetic", images=8, seed=3)  # a cache: same data back
    assert again.image_ids == data.image_ids and again.rles == data.rles
