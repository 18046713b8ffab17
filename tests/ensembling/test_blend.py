"""Score grids of OOF blends against the metric computed directly on the blended, quantized probabilities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.metrics import THRESHOLDS, quantize, score_grid
from ensembling.scoring.blend import blend_chunk, candidate_grids

SHAPE = (6, 2, 8, 8)  # N images, C classes, h, w


@pytest.fixture
def data() -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(0)
    truth = (rng.random(SHAPE) < 0.3).astype(np.uint8)
    truth[0, 1] = 0  # an empty pair, scored 1 when the prediction is empty too
    truth[3] = 0
    # Three "models": noisy versions of the truth, so scores differ and blends help.
    oofs = [quantize(np.clip(truth * 0.7 + rng.normal(0.15, noise, SHAPE), 0, 1)) for noise in (0.2, 0.3, 0.4)]
    return oofs, truth


def blended(oofs: list[np.ndarray], counts: dict[int, int]) -> np.ndarray:
    """The weighted mean as candidate_grids forms it: float32, then quantized like a stored prediction."""
    total = sum(oofs[i].astype(np.float32) * c for i, c in counts.items())
    return quantize(total / sum(counts.values()) / 255)


@pytest.mark.parametrize("member", [0, 1, 2])
def test_the_blend_as_it_is_equals_the_single_score(data, member: int) -> None:
    oofs, truth = data
    [grid] = candidate_grids(oofs, truth, {member: 1}, [None])
    assert grid.shape == (2, len(THRESHOLDS), 12)
    np.testing.assert_allclose(grid, score_grid(oofs[member], truth), rtol=0, atol=1e-12)


def test_no_members_scores_each_candidate_alone(data) -> None:
    oofs, truth = data
    grids = candidate_grids(oofs, truth, {}, [0, 1, 2])
    for oof, grid in zip(oofs, grids, strict=True):
        np.testing.assert_allclose(grid, score_grid(oof, truth), rtol=0, atol=1e-12)


def test_a_candidate_joins_the_blend_as_an_equal_weight(data) -> None:
    oofs, truth = data
    grids = candidate_grids(oofs, truth, {0: 1}, [None, 1, 2, 0])
    assert len(grids) == 4
    for grid, counts in zip(grids, [{0: 1}, {0: 1, 1: 1}, {0: 1, 2: 1}, {0: 2}], strict=True):
        np.testing.assert_allclose(grid, score_grid(blended(oofs, counts), truth), rtol=0, atol=1e-12)
    # A blend differs from either member: the test would not pass with the blend ignored.
    assert not np.allclose(grids[1], grids[0])


def test_counts_are_weights(data) -> None:
    oofs, truth = data
    expected = score_grid(blended(oofs, {0: 2, 1: 1}), truth)
    [twice_then_one] = candidate_grids(oofs, truth, {0: 2}, [1])
    [one_one_then_again] = candidate_grids(oofs, truth, {0: 1, 1: 1}, [0])
    np.testing.assert_allclose(twice_then_one, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(one_one_then_again, expected, rtol=0, atol=1e-12)
    [as_it_is] = candidate_grids(oofs, truth, {0: 2, 1: 1}, [None])
    np.testing.assert_allclose(as_it_is, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("chunk", [1, 4, 5, 6, 100])
def test_chunk_size_does_not_change_results(data, chunk: int) -> None:
    oofs, truth = data
    reference = candidate_grids(oofs, truth, {0: 1, 2: 1}, [None, 0, 1, 2], chunk=6)
    for got, want in zip(
        candidate_grids(oofs, truth, {0: 1, 2: 1}, [None, 0, 1, 2], chunk=chunk), reference, strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_memory_mapped_inputs_give_identical_results(data, tmp_path: Path) -> None:
    oofs, truth = data
    for i, oof in enumerate(oofs):
        np.save(tmp_path / f"oof{i}.npy", oof)
    np.save(tmp_path / "truth.npy", truth)
    mapped = [np.load(tmp_path / f"oof{i}.npy", mmap_mode="r") for i in range(len(oofs))]
    mapped_truth = np.load(tmp_path / "truth.npy", mmap_mode="r")
    assert isinstance(mapped[0], np.memmap)
    got = candidate_grids(mapped, mapped_truth, {1: 2}, [None, 0, 2], chunk=4)
    want = candidate_grids(oofs, truth, {1: 2}, [None, 0, 2], chunk=4)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_blend_chunk_is_the_weighted_sum(data) -> None:
    oofs, _ = data
    got = blend_chunk(oofs, {0: 2, 2: 1}, slice(1, 3))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, oofs[0][1:3].astype(np.float32) * 2 + oofs[2][1:3])
    with pytest.raises(ValueError, match="at least one member"):
        blend_chunk(oofs, {}, slice(0, 2))


def test_scoring_the_empty_blend_is_an_error(data) -> None:
    oofs, truth = data
    with pytest.raises(ValueError, match="candidate None scores the blend as it is, which needs at least one member"):
        candidate_grids(oofs, truth, {}, [None])


def test_an_oof_of_another_shape_is_an_error(data) -> None:
    oofs, truth = data
    longer = np.concatenate([oofs[1], oofs[1][:2]])  # extra rows would otherwise be ignored silently
    with pytest.raises(ValueError, match=r"OOF 1 has shape \(8, 2, 8, 8\) but the truth has \(6, 2, 8, 8\)"):
        candidate_grids([oofs[0], longer], truth, {0: 1}, [1])
    with pytest.raises(ValueError, match="candidate 3 is out of range: there are 3 OOF arrays"):
        candidate_grids(oofs, truth, {0: 1}, [3])


@pytest.mark.parametrize("compact, fused", [(True, True), (False, True), (False, False)])
@pytest.mark.parametrize("rows", [None, np.array([0, 2, 3, 5])])
def test_blend_scorer_equals_tuning_the_blend_itself(data, rows, compact, fused) -> None:
    from core.postprocess import Tuner, tune_arrays
    from ensembling.scoring.blend import BlendScorer
    from ensembling.scoring.counting import blend_levels

    oofs, truth = data
    scorer = BlendScorer(oofs, truth, Tuner("iou_dataset"), rows=rows, chunk=4, compact=compact, fused=fused, max_kept_share=1.0)
    counts = {0: 2, 2: 1}
    scores = scorer.scores(counts, [None, 1, 0])
    pick = slice(None) if rows is None else rows
    for candidate, score in zip([None, 1, 0], scores, strict=True):
        with_one = dict(counts) if candidate is None else {**counts, candidate: counts.get(candidate, 0) + 1}
        total = sum(oofs[i].astype(np.int64) * c for i, c in with_one.items())
        probs = blend_levels(sum(with_one.values()))[total]
        want = tune_arrays(probs[pick], truth[pick], "iou_dataset", components_too=False)
        assert score == pytest.approx(want.score, abs=1e-12)


@pytest.mark.parametrize("use_numba", [True, False])
def test_compact_counts_score_like_the_dense_pass(use_numba) -> None:
    """Low values everywhere but a few blobs: most pixels are left out, the scores must not move."""
    from core.postprocess import Tuner
    from ensembling.scoring import compact
    from ensembling.scoring.blend import BlendScorer

    if use_numba and compact.numba is None:
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(7)
    truth = np.zeros((10, 3, 12, 16), np.uint8)
    truth[::3, 1, 2:6, 3:9] = 1
    oofs = [np.clip(truth * rng.integers(100, 250) + rng.integers(0, 30, truth.shape), 0, 255).astype(np.uint8) for _ in range(4)]
    dense = BlendScorer(oofs, truth, Tuner(), chunk=3, compact=False)
    sparse = BlendScorer(oofs, truth, Tuner(), chunk=3, compact=True, max_kept_share=1.0)
    original = compact.count_compact
    compact.count_compact = lambda *a, **k: original(*a, use_numba=use_numba, **k)
    try:
        import ensembling.scoring.blend as blend

        blend.count_compact = compact.count_compact
        for counts in ({}, {0: 1}, {1: 2, 3: 1}):
            candidates = [None, 0, 1, 2, 3] if counts else [0, 1, 2, 3]
            assert sparse.scores(counts, candidates) == pytest.approx(dense.scores(counts, candidates), abs=1e-12)
        kept = sum(c.values.shape[1] for c in sparse.compact_chunks())
        assert kept < truth.size / 2  # the point: most pixels never need reading again
    finally:
        blend.count_compact = original
        compact.count_compact = original


def test_compact_falls_back_to_dense_when_most_pixels_can_matter(data) -> None:
    from core.postprocess import Tuner
    from ensembling.scoring.blend import BlendScorer

    oofs, truth = data  # noisy everywhere: nearly every pixel reaches 0.1 in some model
    scorer = BlendScorer(oofs, truth, Tuner(), compact=True)
    assert scorer.compact_chunks() is None and scorer.compact is False
    assert scorer.scores({0: 1}, [1]) == BlendScorer(oofs, truth, Tuner(), compact=False).scores({0: 1}, [1])
