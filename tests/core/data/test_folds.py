import numpy as np
import pandas as pd
import pytest

from core.data.folds import TRAIN_ONLY, folds_hash, holdout_share, make_folds, read_folds, write_folds

IDS = [f"{i:04d}.jpg" for i in range(40)]


def _labels() -> np.ndarray:
    """40 images: class counts 10, 20, 5, 4 with overlaps, and 8 clean images."""
    labels = np.zeros((40, 4), np.int64)
    labels[:10, 0] = 1
    labels[5:25, 1] = 1
    labels[30:35, 2] = 1
    labels[::13, 3] = 1
    return labels


def test_every_image_gets_exactly_one_fold():
    folds = make_folds(IDS, _labels(), 5, seed=0)
    assert list(folds.columns) == ["image_id", "fold"]
    assert folds["image_id"].tolist() == IDS  # same order as given
    assert folds["fold"].dtype == np.int64
    assert set(folds["fold"]) == {0, 1, 2, 3, 4}


@pytest.mark.parametrize(("n_folds", "seed"), [(2, 0), (3, 1), (4, 2), (5, 3)])
def test_folds_balance_every_class_and_the_clean_images(n_folds, seed):
    labels = _labels()
    assert (labels.sum(axis=1) == 0).sum() == 8
    fold = make_folds(IDS, labels, n_folds, seed)["fold"].to_numpy()
    with_clean = np.concatenate([labels, (labels.sum(axis=1) == 0)[:, None]], axis=1)
    per_fold = np.array([with_clean[fold == k].sum(axis=0) for k in range(n_folds)])  # (folds, classes + 1)
    assert per_fold.sum(axis=0).tolist() == [10, 20, 5, 4, 8]
    spread = per_fold.max(axis=0) - per_fold.min(axis=0)
    assert (spread <= 1).all(), per_fold


def test_deterministic_by_seed():
    a = make_folds(IDS, _labels(), 4, seed=7)
    b = make_folds(IDS, _labels(), 4, seed=7)
    pd.testing.assert_frame_equal(a, b)
    others = [make_folds(IDS, _labels(), 4, seed=s)["fold"].tolist() for s in range(8, 12)]
    assert any(o != a["fold"].tolist() for o in others)


def test_boolean_labels_work():
    folds = make_folds(IDS, _labels().astype(bool), 4, seed=0)
    pd.testing.assert_frame_equal(folds, make_folds(IDS, _labels(), 4, seed=0))


@pytest.mark.parametrize(
    ("ids", "labels", "n_folds", "message"),
    [
        (IDS, _labels(), 1, r"folds must be >= 2 for out-of-fold predictions \(or 1 with oof_share below 1: a holdout\), got 1"),
        (IDS[:3], _labels()[:3], 4, r"folds \(4\) must not exceed the number of images \(3\)"),
        (IDS, _labels()[:39], 4, r"labels must have shape \(images, classes\) = \(40, C\), got \(39, 4\)"),
        (IDS, _labels()[:, 0], 4, r"got \(40,\)"),
        (IDS[:5] + IDS[:1], np.zeros((6, 4)), 2, "image ids must be unique .* '0000.jpg' appears more than once"),
    ],
)
def test_bad_arguments(ids, labels, n_folds, message):
    with pytest.raises(ValueError, match=message):
        make_folds(ids, labels, n_folds, seed=0)


def test_a_holdout_keeps_a_stratified_share_and_marks_the_rest_train_only():
    labels = _labels()
    split = make_folds(IDS, labels, 1, seed=3, oof_share=0.25)  # 4 stratified parts: part 0 validates, 1-3 only train
    held = split["fold"] == 0
    assert set(split["fold"]) == {0, TRAIN_ONLY} and held.sum() == 10
    assert np.abs(labels[held.to_numpy()].sum(0) - labels.sum(0) / 4).max() <= 1  # each class about a quarter, as in 4 folds
    two = make_folds(IDS, labels, 2, seed=3, oof_share=0.5)
    assert sorted(set(two["fold"])) == [TRAIN_ONLY, 0, 1] and (two["fold"] >= 0).sum() == 20
    with pytest.raises(ValueError, match=r"oof_share must be in \(0, 1\], got 1.5"):
        make_folds(IDS, labels, 2, seed=0, oof_share=1.5)
    with pytest.raises(ValueError, match=r"folds=1 with oof_share=0.01 needs 100 parts, more than the 40 images"):
        make_folds(IDS, labels, 1, seed=0, oof_share=0.01)


def test_holdout_share_is_a_tenth_but_at_least_thirty_images_and_at_most_half():
    assert holdout_share(894) == 0.1 and holdout_share(210) == pytest.approx(30 / 210, abs=1e-4) and holdout_share(40) == 0.5


def test_write_read_round_trip_keeps_ids_as_text(tmp_path):
    ids = ["001", "10", "1e5", "a.jpg", "NA"]  # would turn into numbers or NaN if read as values
    folds = make_folds(ids, np.eye(5, 2, dtype=np.int64), 2, seed=0)
    path = tmp_path / "study" / "folds.csv"
    write_folds(path, folds)
    back = read_folds(path)
    assert back["image_id"].tolist() == ids
    pd.testing.assert_frame_equal(back, folds)
    assert folds_hash(back) == folds_hash(folds)
    assert [p.name for p in path.parent.iterdir()] == ["folds.csv"]  # no temp file left behind


def test_read_folds_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="folds file not found"):
        read_folds(tmp_path / "folds.csv")
    (tmp_path / "folds.csv").write_text("image,fold\na,0\n")
    with pytest.raises(ValueError, match="expected columns image_id,fold, got image,fold"):
        read_folds(tmp_path / "folds.csv")


def test_folds_hash_changes_when_one_image_moves():
    folds = make_folds(IDS, _labels(), 5, seed=0)
    digest = folds_hash(folds)
    assert len(digest) == 16 and digest == folds_hash(folds.copy())
    moved = folds.copy()
    moved.loc[3, "fold"] = (moved.loc[3, "fold"] + 1) % 5
    assert folds_hash(moved) != digest
    swapped = folds.iloc[[1, 0, *range(2, 40)]].reset_index(drop=True)  # order is part of the contract
    assert folds_hash(swapped) != digest
