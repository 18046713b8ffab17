"""Batches of images read by a pool of workers while the batch before them is predicted.

Shared by the mask and the label predict (``ensembling.predict``, ``ensembling.runtime.predict_classes``):
at most ``READ_AHEAD`` batches are being read at once, so memory stays a few batches of images
whatever the number of images.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from core.data.images import read_rgb

READ_AHEAD = 2  # batches being read while one is predicted: memory stays a few batches of images


def read_ahead(batches: list[list[str]], path_of: Callable[[str], Path], pool: ThreadPoolExecutor) -> Iterator[tuple[list[str], list[np.ndarray]]]:
    """Yield each batch's ids and RGB pixels (files found by ``path_of(id)``) while the next batches are read."""
    pending: deque[tuple[list[str], list[Future]]] = deque()
    queue = iter(batches)

    def submit() -> None:
        batch = next(queue, None)
        if batch is not None:
            pending.append((batch, [pool.submit(read_rgb, path_of(i)) for i in batch]))

    for _ in range(READ_AHEAD):
        submit()
    while pending:
        batch, futures = pending.popleft()
        submit()
        yield batch, [f.result() for f in futures]
