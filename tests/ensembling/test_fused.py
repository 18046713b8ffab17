"""The fused dense pass (one read per candidate) gives the reference counts, scores and selections."""

import numpy as np
import pytest

from core.metrics import THRESHOLDS
from ensembling.scoring.counting import count_blend, numba
from ensembling.scoring.fused import BLOCK, StepChunk


def sparse_oofs(shape, candidates, seed):
    """Near-0 background with blobs (true ones seen by most candidates, false ones by some): most blocks never
    reach the lowest threshold, so the screen skips them; a few pixels sit exactly around it."""
    rng = np.random.default_rng(seed)
    n, classes, h, w = shape
    truth = np.zeros(shape, np.uint8)
    for _ in range(n):
        i, c = rng.integers(n), rng.integers(classes)
        y, x = rng.integers(0, h - 3), rng.integers(0, w - 9)
        truth[i, c, y : y + 3, x : x + 9] = 1
    oofs = []
    for _ in range(candidates):
        oof = (rng.integers(0, 20, shape) + truth * rng.integers(0, 230, shape)).astype(np.uint8)  # misses some truth
        for _ in range(max(1, n // 4)):  # false alarms of the truth's size
            i, c, y, x = rng.integers(n), rng.integers(classes), rng.integers(0, h - 3), rng.integers(0, w - 9)
            oof[i, c, y : y + 3, x : x + 9] = rng.integers(60, 220)
        i, c, y, x = rng.integers(n), rng.integers(classes), rng.integers(0, h - 2), rng.integers(0, w - 2)
        oof[i, c, y : y + 2, x : x + 2] = rng.integers(20, 30)  # near the lowest threshold (0.1 is level 26)
        oofs.append(oof)
    return oofs, truth


@pytest.mark.parametrize("use_numba", [True, False] if numba is not None else [False])
@pytest.mark.parametrize("hw", [(7, 81), (4, 12)])  # 567 pixels: two full blocks and a tail; 48: a tail only
@pytest.mark.parametrize("counts", [{}, {0: 1}, {0: 2, 1: 1}])
def test_fused_counts_equal_the_reference(use_numba, hw, counts):
    assert 2 * BLOCK < 567 < 3 * BLOCK
    oofs, truth = sparse_oofs((6, 3, *hw), 3, seed=len(counts) + hw[0])
    base = sum((oofs[i].astype(np.uint16) * c for i, c in counts.items()), np.zeros(truth.shape, np.uint16))
    weight = sum(counts.values())
    step = StepChunk([(oofs[i], c) for i, c in counts.items()], truth, THRESHOLDS, use_numba=use_numba)
    for cand in [None, 0, 2] if counts else [0, 2]:
        got = step.count(None if cand is None else oofs[cand])
        want = count_blend(base, weight + (cand is not None), None if cand is None else oofs[cand], truth, THRESHOLDS, use_numba=False)
        for g, w in zip(got[:3], want[:3], strict=True):
            np.testing.assert_array_equal(g, w)
        live = want[0][..., 0] > 0
        assert 0 < live.sum() < live.size  # both kinds of pair are exercised
        np.testing.assert_array_equal(got[3][live], want[3][live])  # the max level is exact where a mask exists
        assert (got[3][~live] == 0).all()


@pytest.mark.parametrize("with_classifier", [False, True])
def test_selection_with_the_fused_pass_equals_the_reference(with_classifier):
    """The greedy choices, their scores and the tuned post-processing are those of the reference dense pass."""
    from core.postprocess import GATE_BLEND_MAX, Tuner
    from ensembling.scoring.blend import BlendScorer
    from ensembling.scoring.greedy import GreedyConfig
    from ensembling.select import choose

    oofs, truth = sparse_oofs((40, 3, 8, 80), 5, seed=3)
    classifier = np.random.default_rng(1).random(truth.shape[:2]) if with_classifier else None
    config = GreedyConfig(max_steps=4, patience=4)
    outcomes = []
    for fused in (True, False):
        scorer = BlendScorer(oofs, truth, Tuner(), classifier, compact=False, fused=fused)
        outcomes.append(choose(scorer, [1.0] * len(oofs), 10.0, config, GATE_BLEND_MAX, quiet=True))
    (fast, tuned_fast, singles_fast), (slow, tuned_slow, singles_slow) = outcomes
    assert singles_fast == pytest.approx(singles_slow, abs=1e-12)
    assert [c for c, _ in fast.history] == [c for c, _ in slow.history]
    assert [s for _, s in fast.history] == pytest.approx([s for _, s in slow.history], abs=1e-12)
    assert tuned_fast.values == tuned_slow.values and tuned_fast.score == pytest.approx(tuned_slow.score, abs=1e-12)
    assert len(fast.history) > 2  # the selection really took steps
    assert max(singles_fast) < 0.99 and len(set(singles_fast)) == len(singles_fast)  # candidates a step can tell apart


@pytest.mark.parametrize("where", ["cpu", "cuda"])
def test_the_device_counts_select_like_the_cpu(where):
    """The GPU path (``ensembling.scoring.gpu_step``): on CUDA when present (Triton if installed), and its code run by
    torch on the CPU everywhere: the same choices and scores as the CPU's fused pass."""
    from core.postprocess import GATE_BLEND_MAX, Tuner
    from ensembling.scoring.blend import BlendScorer
    from ensembling.scoring.gpu_step import DeviceCounts
    from ensembling.scoring.greedy import GreedyConfig
    from ensembling.select import choose

    oofs, truth = sparse_oofs((24, 3, 8, 80), 4, seed=5)
    config = GreedyConfig(max_steps=3, patience=3)
    cpu = BlendScorer(oofs, truth, Tuner(), compact=False)
    device = BlendScorer(oofs, truth, Tuner(), compact=False, rows=None)
    if where == "cuda":
        from ensembling.scoring.gpu_step import cuda_available

        if not cuda_available():
            pytest.skip("no CUDA device here")
        device._device_counts = DeviceCounts(oofs, truth, "cuda")
    else:
        device._device_counts = DeviceCounts(oofs, truth, "cpu", path="torch (bincount)")
    assert device.path.startswith(f"dense, on {where}")
    want = choose(cpu, [1.0] * 4, 10.0, config, GATE_BLEND_MAX, quiet=True)
    got = choose(device, [1.0] * 4, 10.0, config, GATE_BLEND_MAX, quiet=True)
    assert got[2] == pytest.approx(want[2], abs=1e-12)
    assert [c for c, _ in got[0].history] == [c for c, _ in want[0].history]
    assert [s for _, s in got[0].history] == pytest.approx([s for _, s in want[0].history], abs=1e-12)
    assert got[1].values == want[1].values
    assert device.scores({0: 1}, [None, 1]) == pytest.approx(cpu.scores({0: 1}, [None, 1]), abs=1e-12)


def test_device_names_are_checked():
    from ensembling.scoring.gpu_step import cuda_available, resolve_device

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if cuda_available() else "cpu")
    with pytest.raises(ValueError, match="device must be auto, cpu or cuda, got 'gpu'"):
        resolve_device("gpu")
    if not cuda_available():
        with pytest.raises(ValueError, match="device=cuda but torch sees no CUDA device"):
            resolve_device("cuda")


def test_scorers_of_one_selection_share_the_device_copy():
    from ensembling.scoring.gpu_step import DeviceCounts

    oofs, truth = sparse_oofs((4, 2, 8, 40), 2, seed=1)
    first = DeviceCounts.shared(oofs, truth, "cpu")
    assert DeviceCounts.shared(oofs, truth, "cpu") is first  # the nested estimate's scorers: one copy
    assert DeviceCounts.shared(list(oofs), truth, "cpu") is not first  # other arrays: a new one
