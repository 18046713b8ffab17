"""Labels of the ``classes`` format beyond one per image, and a segmentation set read as labels."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from shared_data import shared

from core.data.inspect import data_picture
from core.data.study import DataConfig, data_kind, load_data, study_metric


def _csv_set(root: Path, rows: list[tuple[str, str]]) -> Path:
    (root / "images").mkdir(parents=True)
    for image, _ in rows:
        cv2.imwrite(str(root / "images" / image), np.full((24, 32, 3), 120, np.uint8))
    (root / "labels.csv").write_text("image,label\n" + "".join(f"{i},{label}\n" for i, label in rows))
    return root


def test_multi_label_csv_reads_several_labels_and_none(tmp_path: Path) -> None:
    root = _csv_set(tmp_path, [("a.png", "rust scratch"), ("b.png", "scratch"), ("c.png", "")])
    data = load_data(DataConfig(format="classes", root=str(root), multi_label=True))
    assert data.kind == "classification" and data.multi_label and data.class_names == ("rust", "scratch")
    assert data.labels().tolist() == [[1, 1], [0, 1], [0, 0]]
    assert data_kind(DataConfig(format="classes", root=str(root), multi_label=True)) == ("classification", True)
    assert data_picture(data, n=3).shape[2] == 3  # each tile titled with its classes, "none" for c.png


def test_an_empty_label_is_a_bad_row_when_each_image_has_one(tmp_path: Path) -> None:
    root = _csv_set(tmp_path, [("a.png", "rust"), ("c.png", "")])
    with pytest.raises(ValueError, match=r"labels.csv:3: empty label for c.png"):
        load_data(DataConfig(format="classes", root=str(root)))


def test_multi_label_needs_the_label_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"data.multi_label=true reads several labels per image from a CSV"):
        load_data(DataConfig(format="classes", root=str(tmp_path), source="prefix", multi_label=True))
    (tmp_path / "x_1.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"data.multi_label=true needs the label file labels.csv"):
        load_data(DataConfig(format="classes", root=str(tmp_path), multi_label=True))


def test_neu_det_root_is_read_by_prefix_from_its_images_folder() -> None:
    data = load_data(DataConfig(format="classes", root=str(shared("neu_det_cls"))))
    assert len(data) == 300 and data.image_dir.name == "IMAGES" and len(data.class_names) == 6
    assert np.bincount(data.labels().argmax(axis=1)).tolist() == [50] * 6
    assert study_metric(DataConfig(format="classes", root="x"), None) == "accuracy"


def test_presence_reads_masks_as_which_classes_each_image_has(tmp_path: Path) -> None:
    config = DataConfig(format="synthetic", root=str(tmp_path), images=8, task="presence")
    data = load_data(config)
    masks = load_data(DataConfig(format="synthetic", root=str(tmp_path), images=8))
    assert data.kind == "classification" and data.multi_label and masks.kind == "segmentation"
    for i, image_id in enumerate(data.image_ids):
        assert data.labels()[i].tolist() == masks.masks(image_id).any(axis=(1, 2)).astype(int).tolist()
    assert study_metric(config, None) == "macro_f1"
    assert data_picture(data, n=4).size > 0  # masks still drawn, tiles titled with the classes present
