"""Measured inference cost of one model with its TTA, so selection can respect a kernel's time limit.

Costs measured on different machines compare through ``reference_ms``: the time of a fixed small
convolution workload on the same device. Dividing by it turns milliseconds into device-free units.
"""

from __future__ import annotations

import time

import torch

from core.tta import predict_labels_tta, predict_tta, views


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device, repeats: int) -> float:  # type: ignore[no-untyped-def]
    """Median seconds of ``fn()`` over ``repeats`` runs, after one warm-up run."""
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


@torch.no_grad()
def reference_ms(device: torch.device) -> float:
    """Milliseconds for a fixed workload: 8 images of 3x128x128 through four 3x3 convolutions."""
    generator = torch.Generator().manual_seed(0)
    layers = [torch.nn.Conv2d(3 if i == 0 else 32, 32, 3, padding=1) for i in range(4)]
    net = torch.nn.Sequential(*[m for layer in layers for m in (layer, torch.nn.ReLU())]).to(device).eval()
    x = torch.randn(8, 3, 128, 128, generator=generator).to(device)
    return 1000 * _timed(lambda: net(x), device, repeats=5)


@torch.no_grad()
def measure_cost(
    model: torch.nn.Module, size: tuple[int, int], tta: str, device: torch.device, batch_size: int = 8, repeats: int = 3, labels: bool = False
) -> dict:
    """Milliseconds per image for one model with its TTA views, at the trial's input size (``labels``: a
    classifier, its views averaged as image labels)."""
    model.eval()
    batch = torch.randn(batch_size, 3, *size, generator=torch.Generator().manual_seed(0)).to(device)
    if labels:
        seconds = _timed(lambda: predict_labels_tta(model, batch, tta, multi_label=False), device, repeats)
    else:
        seconds = _timed(lambda: predict_tta(model, batch, tta), device, repeats)
    return {
        "ms_per_image": 1000 * seconds / batch_size,
        "batch_size": batch_size,
        "tta": tta,
        "views": len(views(tta)),
        "input_size": list(size),
        "device": device_name(device),
        "reference_ms": reference_ms(device),
    }
