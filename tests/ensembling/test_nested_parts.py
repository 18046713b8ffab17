"""``ensembling.scoring.nested.outer_parts``: which images each round of the nested estimate holds out."""

from __future__ import annotations

import re

import numpy as np
import pytest

from ensembling.scoring.nested import outer_parts


def test_every_part_holds_images_of_every_fold_in_near_equal_shares() -> None:
    folds = np.repeat([0, 1, 2], [7, 5, 6])
    parts = outer_parts(folds, "images", seed=3)
    assert sorted(set(parts.tolist())) == [0, 1, 2]  # as many parts as folds
    for part in range(3):
        for fold in range(3):
            share = np.sum((parts == part) & (folds == fold))
            assert share in (np.sum(folds == fold) // 3, -(-np.sum(folds == fold) // 3))  # the fold dealt evenly
    assert np.ptp(np.bincount(parts)) <= 1  # the parts differ by one image at most
    assert not np.array_equal(parts, outer_parts(folds, "images", seed=4))  # the deal follows the seed
    np.testing.assert_array_equal(parts, outer_parts(folds, "images", seed=3))  # and only the seed


def test_folds_split_is_the_training_folds_and_an_unknown_split_is_refused() -> None:
    folds = np.array([1, 0, 1, 0, 2])
    np.testing.assert_array_equal(outer_parts(folds, "folds"), folds)
    with pytest.raises(ValueError, match=re.escape("nested.split=rows: give one of images, folds")):
        outer_parts(folds, "rows")


def test_a_holdouts_one_fold_is_dealt_into_two_parts_and_split_by_folds_is_refused() -> None:
    parts = outer_parts(np.zeros(9, np.int64), "images")
    assert sorted(np.bincount(parts).tolist()) == [4, 5]
    with pytest.raises(ValueError, match=r"nested.split=folds needs 2 folds or more, and this study has 1 \(a holdout\)"):
        outer_parts(np.zeros(9, np.int64), "folds")
