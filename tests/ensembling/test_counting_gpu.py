"""The GPU step's paths give the CPU's counts (run on the CPU: torch eagerly, Triton in its interpreter)."""

import os

import numpy as np
import pytest
import torch

from ensembling.scoring.counting_gpu import PATHS, reference_counts


@pytest.mark.parametrize("name", list(PATHS))
def test_paths_match_the_cpu_reference(name, monkeypatch):
    if name.startswith("triton"):
        pytest.importorskip("triton")
        if not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
            pytest.skip("Triton runs here only in its interpreter: TRITON_INTERPRET=1 (set before import)")
    rng = np.random.default_rng(0)
    pairs, pixels, weight = 6, 300, 3
    members = rng.integers(0, 256, (2, pairs, pixels))
    base = (members[0] + members[1]).astype(np.int16)
    cands = rng.integers(0, 256, (2, pairs, pixels)).astype(np.uint8)
    truth = (rng.random((pairs, pixels)) < 0.3).astype(np.uint8)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    got = PATHS[name](torch.from_numpy(base).to(device), weight, torch.from_numpy(cands).to(device), torch.from_numpy(truth).to(device))
    for k in range(2):
        for have, want in zip(got, reference_counts(base, weight, cands[k], truth), strict=True):
            np.testing.assert_array_equal(have[k].cpu().numpy(), want)
