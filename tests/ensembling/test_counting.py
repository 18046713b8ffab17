"""The fast blend counts equal the metric module's histogram counts of the quantized blend."""

import numpy as np
import pytest

from core.metrics import THRESHOLDS, pair_counts
from ensembling.scoring.counting import blend_levels, count_blend, numba


@pytest.mark.parametrize("use_numba", [False, True] if numba is not None else [False])
@pytest.mark.parametrize("counts", [{0: 1}, {0: 1, 1: 1}, {0: 2, 1: 1, 2: 3}])
@pytest.mark.parametrize("high", [256, 30])  # 30: most pairs never reach the lowest threshold (the skipped pass)
def test_counts_match_the_quantized_blend(use_numba, counts, high):
    rng = np.random.default_rng(len(counts))
    oofs = rng.integers(0, high, (3, 5, 2, 6, 7)).astype(np.uint8)
    truth = (rng.random((5, 2, 6, 7)) < 0.3).astype(np.uint8)
    *members, last = counts.items()
    base = sum((oofs[i].astype(np.uint16) * c for i, c in members), np.zeros(truth.shape, np.uint16))
    base += oofs[last[0]].astype(np.uint16) * (last[1] - 1)
    weight = sum(counts.values())
    pred, inter, area, top = count_blend(base, weight, oofs[last[0]], truth, THRESHOLDS, use_numba=use_numba)
    total = sum(oofs[i].astype(np.int64) * c for i, c in counts.items())
    probs = blend_levels(weight)[total]
    want = pair_counts(probs, truth, THRESHOLDS)
    np.testing.assert_array_equal(pred, want.pred_area)
    np.testing.assert_array_equal(inter, want.inter)
    np.testing.assert_array_equal(area, want.truth_area)
    np.testing.assert_array_equal(top, want.max_level)


def test_blend_levels_round_like_rint():
    np.testing.assert_array_equal(blend_levels(1), np.arange(256))
    assert blend_levels(2)[3] == 2 and blend_levels(2)[1] == 0  # 1.5 -> 2, 0.5 -> 0 (half to even)
