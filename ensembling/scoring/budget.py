"""The inference budget on the target device: what each candidate would cost in a kernel there.

Trials measure milliseconds per image where they ran, and ``cost.json`` holds ``reference_ms``, the
time of one fixed workload (``trainables.cost.reference_ms``) on that device. A candidate's time on the
target is ``ms x target_reference / trial_reference``: a trial measured on a slow shared CPU is not
charged for the CPU. ``budget.device`` names a preset below, or is a number: a ratio applied to every
measured time as it is. Beside the models, a kernel decodes each image, resizes each member's output
back, post-processes and writes RLE: those are ``OVERHEAD_MS``, measured on this project's 2-core CPU
by ``bench/perf/bench_kernel_overhead.py`` (256x1600, 4 classes, one thread) and charged as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# reference_ms of the fixed workload (8 x 3x128x128 through four 3x3 convolutions of 32 channels,
# ~7.5 GFLOP) per target, with where the number comes from.
PRESETS: dict[str, tuple[float, str]] = {
    "kaggle-p100": (1.6, "estimated: 7.5 GFLOP at half of the P100's 9.3 TFLOPS fp32 peak"),
    "kaggle-t4": (3.0, "estimated: 7.5 GFLOP at half of the T4's sustained ~5 TFLOPS fp32 (clock-limited below its 8.1 peak)"),
    "h100": (0.25, "estimated: 7.5 GFLOP at half of the H100 SXM's 67 TFLOPS fp32 peak"),
    "cpu-2core": (649.0, "measured: trainables.cost.reference_ms on this project's shared 2-core CPU, torch 2 threads"),
}
DEFAULT_DEVICE = "kaggle-p100"
# ms per image of the non-model parts (bench/perf/bench_kernel_overhead.py, 256x1600, 4 classes, one thread)
OVERHEAD_MS = {"decode": 4.8, "post-processing": 49.0, "rle": 2.5}
RESIZE_BACK_MS = 8.9  # per member: its C probability maps back to the image's size


@dataclass
class Budget:
    seconds: float = 3600.0  # a Kaggle kernel's hour
    images: int = 5506  # Severstal's full test set
    device: str | float = DEFAULT_DEVICE
    labels: bool = False  # a classifier's kernel: decode only, no mask resize, post-processing or RLE

    def __post_init__(self) -> None:
        if isinstance(self.device, bool) or not isinstance(self.device, str | int | float):
            raise ValueError(f"budget.device must be a preset ({', '.join(PRESETS)}) or a number, got {self.device!r}")
        if isinstance(self.device, str) and self.device not in PRESETS:
            raise ValueError(f"budget.device must be one of {', '.join(PRESETS)} or a ratio (a number), got {self.device!r}")
        if not isinstance(self.device, str) and not self.device > 0:
            raise ValueError(f"budget.device as a ratio must be > 0, got {self.device!r}")
        if not self.seconds > 0 or self.images < 1:
            raise ValueError(f"budget.seconds must be > 0 and budget.images >= 1, got {self.seconds} and {self.images}")

    def ratio(self, cost: dict[str, Any]) -> float:
        """Target time over measured time for a trial's cost.json."""
        if not isinstance(self.device, str):
            return float(self.device)
        return PRESETS[self.device][0] / float(cost["reference_ms"])

    def member_seconds(self, ms_per_image: float, cost: dict[str, Any]) -> float:
        """One candidate's share: its forward passes (all folds, TTA) on the target and its resize back."""
        return (ms_per_image * self.ratio(cost) + (0.0 if self.labels else RESIZE_BACK_MS)) * self.images / 1000

    @property
    def fixed_seconds(self) -> float:
        """What the kernel spends whatever the members: decode, post-processing, RLE."""
        per_image = OVERHEAD_MS["decode"] if self.labels else sum(OVERHEAD_MS.values())
        return per_image * self.images / 1000

    @property
    def for_members(self) -> float:
        return self.seconds - self.fixed_seconds

    def describe(self) -> str:
        device = f"{self.device} ({PRESETS[self.device][1]})" if isinstance(self.device, str) else f"measured times x {self.device}"
        fixed = "decoding" if self.labels else "decode, post-processing and RLE"
        return f"{self.seconds:.0f} s for {self.images} images on {device}; {self.fixed_seconds:.0f} s of it {fixed}"


def curve(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Best score reachable within each number of seconds, from (seconds, score) of evaluated blends."""
    out: list[tuple[float, float]] = []
    for seconds, score in sorted(points):
        if not out or score > out[-1][1]:
            out.append((seconds, score))
    return out
