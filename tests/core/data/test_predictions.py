"""Predictions written in each format's own layout: Carvana CSV, folder PNG masks (+ RLE CSV)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from shared_data import shared

import core.data  # noqa: F401
from core.data.images import read_mask
from core.data.predictions import mask_image, predict_into, write_png_masks
from core.data.rle import rle_decode


def _truth_model(mask_dir, suffix="_mask"):
    """A 'model' that answers each real image with its real mask, found by pixel equality of the image."""
    from core.data.images import read_rgb

    table = {}

    def add(images_dir):
        for path in sorted(images_dir.iterdir()):
            mask = np.array(Image.open(mask_dir / f"{path.stem}{suffix}.png").convert("L")) > 127
            table[read_rgb(path).tobytes()] = mask[None].astype(np.uint8)

    def masks_for(images):
        return [table[image.tobytes()] for image in images]

    return add, masks_for


def test_carvana_submission_round_trips_real_masks(tmp_path):
    real = shared("carvana_real", "resized_720x480_Cory0726")
    add, masks_for = _truth_model(real / "masks")
    add(real / "imgs")
    ids = [p.name for p in sorted((real / "imgs").glob("*.png"))][::-1][:5]  # the sample's order, not ours
    pd.DataFrame({"img": ids, "rle_mask": ["1 1"] * len(ids)}).to_csv(tmp_path / "sample.csv", index=False)
    out = tmp_path / "submission.csv"
    assert predict_into({"format": "carvana"}, real / "imgs", tmp_path / "sample.csv", out, masks_for, 2) == 5
    frame = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert frame.columns.tolist() == ["img", "rle_mask"] and frame["img"].tolist() == ids
    for image_id, rle in zip(frame["img"], frame["rle_mask"], strict=True):
        truth = np.array(Image.open(real / "masks" / f"{image_id[:-4]}_mask.png").convert("L")) > 127
        np.testing.assert_array_equal(rle_decode(rle, truth.shape, "C"), truth)  # row-major, full size


def test_carvana_sample_errors_write_nothing(tmp_path):
    real = shared("carvana_real", "resized_720x480_Cory0726")
    _, masks_for = _truth_model(real / "masks")
    (tmp_path / "sample.csv").write_text("img,rle_mask\na.png,1 1\na.png,1 1\n")
    with pytest.raises(ValueError, match=r"sample.csv:3: image a.png listed twice \(first on line 2\)"):
        predict_into({"format": "carvana"}, real / "imgs", tmp_path / "sample.csv", tmp_path / "o.csv", masks_for)
    (tmp_path / "sample.csv").write_text("id,rle\n")
    with pytest.raises(ValueError, match="expected columns img,rle_mask"):
        predict_into({"format": "carvana"}, real / "imgs", tmp_path / "sample.csv", tmp_path / "o.csv", masks_for)
    assert not (tmp_path / "o.csv").exists()


def test_png_masks_keep_the_training_convention(tmp_path):
    masks = np.zeros((3, 4, 5), np.uint8)
    masks[0, 0, 0] = masks[2, 1, 1] = masks[1, 1, 1] = 1
    index = mask_image(masks, "index")
    assert index[0, 0] == 1 and index[1, 1] == 3 and index.sum() == 4
    assert mask_image(masks[:1], "binary").max() == 255
    written = write_png_masks(tmp_path / "out", [("a.jpg", masks), ("b.jpg", masks * 0)], "index")
    assert [p.name for p in written] == ["a.png", "b.png"]
    np.testing.assert_array_equal(read_mask(tmp_path / "out" / "a.png"), index)
    with pytest.raises(ValueError, match="exists and is not empty"):
        write_png_masks(tmp_path / "out", [("c.jpg", masks)], "index")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]


def test_folder_predictions_with_mixed_sizes_and_a_sample(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    answers = {}
    for name, shape in (("a.png", (20, 30)), ("b.png", (17, 9))):
        image = rng.integers(0, 255, (*shape, 3), dtype=np.uint8)
        Image.fromarray(image).save(images / name)
        masks = np.zeros((2, *shape), np.uint8)
        masks[1, : shape[0] // 2] = 1
        answers[image.tobytes()] = masks
    (tmp_path / "sample.csv").write_text("ImageId,ClassId,EncodedPixels\nb.png,2,1 1\na.png,1,1 1\n")

    def masks_for(batch):
        return [answers[image.tobytes()] for image in batch]

    out = tmp_path / "pred"
    assert predict_into({"format": "folder", "mask_mode": "index"}, images, tmp_path / "sample.csv", out, masks_for) == 2
    assert read_mask(out / "b.png").shape == (17, 9) and read_mask(out / "b.png")[0, 0] == 2  # its own size
    frame = pd.read_csv(out / "submission.csv", dtype=str, keep_default_na=False)
    assert frame["ImageId"].tolist() == ["b.png", "a.png"]
    np.testing.assert_array_equal(rle_decode(frame["EncodedPixels"][0], (17, 9), "C"), answers_of(answers, 1, (17, 9)))
    assert frame["EncodedPixels"][1] == ""


def answers_of(answers, c, shape):
    return next(m[c] for m in answers.values() if m.shape[1:] == shape)
