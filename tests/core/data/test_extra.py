"""Extra training targets (core/data/extra.py): the fold's training set, the mixing, the folder's refusals."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import albumentations as A
import cv2
import numpy as np
import pytest
import torch

from core.contract import StudyFolder
from core.data.extra import ExtraDataset, ExtraWriter, check_replaceable, fit_target, open_extra


class Base:
    """A stand-in for SegmentationDataset: 2 classes of 8x8 masks, image i filled with value i."""

    size = (8, 8)

    def __init__(self, ids: list[str], labels: bool = False) -> None:
        self.image_ids = ids
        self.labels = labels

    def __len__(self) -> int:
        return len(self.image_ids)

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image = np.full((8, 8, 3), index, np.uint8)
        if self.labels:
            return image, np.eye(3, dtype=np.float32)[index % 3]
        masks = np.zeros((2, 8, 8), np.uint8)
        masks[0, :4] = 1
        return image, masks


def test_own_images_mix_truth_and_teacher_by_alpha() -> None:
    own = np.full((5, 2, 4, 4), 255, np.uint8)  # the teacher says 1 everywhere, stored at half the size
    data = ExtraDataset(Base(["a", "b"]), np.array([1, 3]), own, 0.25, [], None, np.array([], int), None)
    _, target = data.pair(0)
    assert target.shape == (2, 8, 8)
    assert np.allclose(target[0, :4], 1.0) and np.allclose(target[0, 4:], 0.25) and np.allclose(target[1], 0.25)


def test_alpha_zero_or_no_teacher_gives_the_truth() -> None:
    own = np.full((5, 2, 8, 8), 255, np.uint8)
    for data in (ExtraDataset(Base(["a"]), np.array([0]), own, 0.0, [], None, np.array([], int), None),
                 ExtraDataset(Base(["a"]), np.array([0]), None, 0.5, [], None, np.array([], int), None)):
        _, target = data.pair(0)
        assert set(np.unique(target)) == {0.0, 1.0}


def test_extra_images_follow_the_own_ones_with_their_stored_targets(tmp_path: Path) -> None:
    paths = []
    for i in range(3):
        path = tmp_path / f"t{i}.png"
        cv2.imwrite(str(path), np.full((16, 16, 3), 40 * i, np.uint8))
        paths.append(path)
    targets = np.zeros((3, 2, 4, 4), np.uint8)
    targets[2, 1] = 128
    kept = np.array([0, 2])
    data = ExtraDataset(Base(["a", "b"]), np.array([0, 1]), None, 0.0, [paths[i] for i in kept], targets, kept, A.Compose([A.HorizontalFlip(p=1)]))
    assert len(data) == 4 and data.image_ids[2:] == [str(paths[0]), str(paths[2])]
    image, target = data[3]
    assert isinstance(image, torch.Tensor) and image.shape == (3, 8, 8)
    assert target.shape == (2, 8, 8) and torch.allclose(target[1], torch.full((8, 8), 128 / 255)) and target[0].abs().sum() == 0


def test_label_targets_mix_and_pass_through() -> None:
    own = np.tile(np.array([[0.0, 0.5, 0.5]], np.float16), (4, 1))
    data = ExtraDataset(Base(["a"], labels=True), np.array([2]), own, 0.5, [], None, np.array([], int), None)
    _, target = data.pair(0)
    assert np.allclose(target, [0.5, 0.25, 0.25])


def test_fit_target_resizes_masks_and_scales_to_one() -> None:
    stored = np.zeros((1, 2, 2), np.uint8)
    stored[0, :, 1] = 255
    out = fit_target(stored, (1, 4, 4))
    assert out.shape == (1, 4, 4) and out.dtype == np.float32 and out.max() == pytest.approx(1.0) and out[0, 0, 0] == 0


def _study(tmp_path: Path, kind: str = "segmentation", folds_hash: str = "abc", train_only: tuple = ()) -> SimpleNamespace:
    return SimpleNamespace(folder=StudyFolder(tmp_path), folds_hash=folds_hash, kind=kind, n_folds=2, train_only=list(train_only),
                           image_ids=["a", "b"], training_images=2 + len(train_only))


def _write(study: SimpleNamespace, name: str = "pseudo", **meta: object) -> None:
    writer = ExtraWriter(study.folder.extra(name), "ensembling.pseudo")
    writer.array("images", 0, (1, 1, 2, 2), "segmentation")[:] = 255
    writer.commit({"kind": "segmentation", "folds_hash": "abc", "n_folds": 2, "alpha": None, "images": ["/x.png"],
                   "keep": {"0": [0], "1": [], "all": [0]}, **meta})


def test_open_extra_reads_what_the_writer_wrote(tmp_path: Path) -> None:
    study = _study(tmp_path)
    _write(study)
    extra = open_extra(study, "pseudo")
    assert extra.kept(0).tolist() == [0] and extra.kept(1).tolist() == [] and extra.kept(2).tolist() == [0]  # fold 2 = the refit's
    assert extra.image_targets(0).max() == 255 and extra.own_targets(0) is None
    assert not list(tmp_path.joinpath("extra").glob(".*"))  # no temp folder left behind


def test_open_extra_refuses_a_missing_folder_another_split_and_another_kind(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"train.extra=nope: .* is not a complete extra folder .*ensembling.pseudo"):
        open_extra(_study(tmp_path), "nope")
    _write(_study(tmp_path))
    with pytest.raises(ValueError, match=r"made for another split .* leak validation images"):
        open_extra(_study(tmp_path, folds_hash="other"), "pseudo")
    with pytest.raises(ValueError, match=r"holds segmentation targets, the study is classification"):
        open_extra(_study(tmp_path, kind="classification"), "pseudo")
    with pytest.raises(ValueError, match=r"train.extra=pseudo: this study holds out only 2 of its 5 images .* no out-of-fold targets"):
        open_extra(_study(tmp_path, train_only=("c", "d", "e")), "pseudo")


def test_a_folder_we_did_not_write_is_never_replaced(tmp_path: Path) -> None:
    study = _study(tmp_path)
    foreign = study.folder.extra("mine")
    foreign.root.mkdir(parents=True)
    (foreign.root / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match=r"name=mine: .* was not written by ensembling.pseudo or ensembling.distill"):
        check_replaceable(foreign)
    with pytest.raises(ValueError, match="not written by"):
        _write(study, "mine")
    assert (foreign.root / "notes.txt").read_text() == "keep me"
    _write(study, "ours")
    _write(study, "ours")  # our own folder is replaced
    assert json.loads(study.folder.extra("ours").extra_json.read_text())["written_by"] == "ensembling.pseudo"


def test_a_loader_worker_gets_the_file_names_not_the_arrays(tmp_path: Path) -> None:
    import pickle

    path = tmp_path / "own.npy"
    np.save(path, np.full((3, 2, 64, 64), 255, np.uint8))
    data = ExtraDataset(Base(["a"]), np.array([2]), np.load(path, mmap_mode="r"), 0.5, [], None, np.array([], int), None)
    blob = pickle.dumps(data)
    assert len(blob) < 3000  # the 24576 bytes of targets are not in it
    again = pickle.loads(blob)
    assert isinstance(again.own, np.memmap) and np.array_equal(again.pair(0)[1], data.pair(0)[1])
