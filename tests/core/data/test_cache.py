"""The on-disk decode cache: built once, shared, keyed by the files, safe when two processes build it."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import core.data  # noqa: F401
from core.data.cache import DiskCache
from core.data.dataset import SegmentationDataset
from core.data.formats import get_format
from core.data.problems import Problems
from core.preprocess import resize_image, resize_masks

SIZE = (32, 48)


def _folder(root, n=6):
    rng = np.random.default_rng(0)
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
    for i in range(n):
        shape = (40, 60) if i % 2 else (50, 70)  # mixed sizes
        Image.fromarray(rng.integers(0, 255, (*shape, 3), dtype=np.uint8)).save(root / "images" / f"{i}.png")
        mask = np.zeros(shape, np.uint8)
        mask[5:20, 10 : 20 + i] = 1 + i % 2
        Image.fromarray(mask).save(root / "masks" / f"{i}.png")
    fmt = get_format("folder")
    return fmt.read(root, fmt.parse_options({}), Problems())


def test_built_once_equal_to_direct_decoding_and_reused(tmp_path):
    data = _folder(tmp_path / "data")
    cache = DiskCache(tmp_path / "cache", data, data.image_ids, SIZE)
    built = cache.images_path.stat().st_mtime_ns
    for image_id in data.image_ids:
        image, masks = cache.get(image_id)
        direct = data.read_image(image_id)
        np.testing.assert_array_equal(image, resize_image(direct, SIZE))
        np.testing.assert_array_equal(masks, resize_masks(data.masks(image_id), SIZE))
    again = DiskCache(tmp_path / "cache", data, data.image_ids, SIZE)
    assert again.images_path == cache.images_path and again.images_path.stat().st_mtime_ns == built
    dataset = SegmentationDataset(data, data.image_ids[:3], SIZE, cache=again)
    image, masks = dataset[1]
    assert tuple(image.shape) == (3, *SIZE) and tuple(masks.shape) == (2, *SIZE)


def test_a_changed_file_or_size_makes_a_new_cache_and_a_damaged_one_is_rebuilt(tmp_path):
    data = _folder(tmp_path / "data")
    first = DiskCache(tmp_path / "cache", data, data.image_ids, SIZE)
    path = data.image_path(data.image_ids[0])
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert DiskCache(tmp_path / "cache", data, data.image_ids, SIZE).images_path != first.images_path
    assert DiskCache(tmp_path / "cache", data, data.image_ids, (64, 64)).images_path != first.images_path
    again = DiskCache(tmp_path / "cache", data, data.image_ids, SIZE)
    with open(again.masks_path, "r+b") as handle:
        handle.truncate(100)
    rebuilt = DiskCache(tmp_path / "cache", data, data.image_ids, SIZE)
    assert rebuilt.get(data.image_ids[0])[1].shape == (2, *SIZE)


def test_pickles_as_paths(tmp_path):
    data = _folder(tmp_path / "data")
    cache = DiskCache(tmp_path / "cache", data, data.image_ids, SIZE)
    cache.get(data.image_ids[0])
    copy = pickle.loads(pickle.dumps(cache))
    assert copy._images is None and len(pickle.dumps(cache)) < 20_000
    np.testing.assert_array_equal(copy.get(data.image_ids[2])[0], cache.get(data.image_ids[2])[0])


BUILD = """
import sys
import core.data
from core.data.cache import DiskCache
from core.data.formats import get_format
from core.data.problems import Problems
fmt = get_format("folder")
data = fmt.read(sys.argv[1], fmt.parse_options({}), Problems())
cache = DiskCache(sys.argv[2], data, data.image_ids, (int(sys.argv[3]), int(sys.argv[4])))
print(cache.images_path, int(cache.get(data.image_ids[-1])[0].sum()))
"""


@pytest.mark.slow
def test_two_processes_building_at_once_agree(tmp_path):
    _folder(tmp_path / "data", n=12)
    # two separate interpreters, started together (not a multiprocessing pool inherited from a test process)
    args = [sys.executable, "-c", BUILD, str(tmp_path / "data"), str(tmp_path / "cache"), *map(str, SIZE)]
    builders = [subprocess.Popen(args, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    results = [builder.communicate(timeout=300)[0].strip() for builder in builders]
    assert all(builder.returncode == 0 for builder in builders) and results[0]
    assert results[0] == results[1]
    leftovers = sorted(p.name for p in (tmp_path / "cache").iterdir() if ".tmp-" in p.name)
    assert leftovers == [] and len(list((tmp_path / "cache").glob("*.npy"))) == 2
