"""Training augmentation policies (albumentations): named presets, or a free composition from a space.

A preset returns its transforms; ``get_augment`` wraps them in a seeded ``Compose`` so a trial reruns
exactly. A free composition (``train.augment_ops``) is a list of one-key mappings naming an
albumentations transform and its arguments, e.g. ``[{HorizontalFlip: {p: 0.5}}, {GaussNoise: {}}]``;
it is built (and so checked) when the trial config is parsed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import albumentations as A
import cv2

from core.registry import Registry

AUGMENT: Registry[Callable[[], list[A.BasicTransform]]] = Registry("augmentation policy")


@AUGMENT.register("none")
def no_augment() -> list[A.BasicTransform]:
    return []


@AUGMENT.register("flips")
def flips() -> list[A.BasicTransform]:
    return [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)]


@AUGMENT.register("light")
def light() -> list[A.BasicTransform]:
    """Flips and a little brightness/contrast: safe for any data."""
    return [*flips(), A.RandomBrightnessContrast(brightness_limit=0.15, contrast_limit=0.15, p=0.5)]


def _geometric(rotate: float, scale: float, p: float) -> A.BasicTransform:
    return A.Affine(
        scale=(1 - scale, 1 + scale),
        translate_percent=(-0.05, 0.05),
        rotate=(-rotate, rotate),
        border_mode=cv2.BORDER_REFLECT_101,
        p=p,
    )


@AUGMENT.register("medium")
def medium() -> list[A.BasicTransform]:
    """Light, plus small shifts, scales and rotations and a little blur or noise."""
    return [
        *light(),
        _geometric(rotate=10, scale=0.1, p=0.5),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.GaussNoise(std_range=(0.02, 0.06))], p=0.3),
    ]


@AUGMENT.register("heavy")
def heavy() -> list[A.BasicTransform]:
    """Medium with stronger geometry and colour, gamma, and cut-out holes (masks cut out too)."""
    return [
        *flips(),
        _geometric(rotate=20, scale=0.2, p=0.7),
        A.RandomBrightnessContrast(brightness_limit=0.25, contrast_limit=0.25, p=0.7),
        A.RandomGamma(gamma_limit=(80, 120), p=0.3),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 7)), A.GaussNoise(std_range=(0.03, 0.1))], p=0.4),
        A.CoarseDropout(num_holes_range=(1, 4), hole_height_range=(0.05, 0.15), hole_width_range=(0.05, 0.15), fill_mask=0, p=0.4),
    ]


def compose_ops(ops: list[Any]) -> list[A.BasicTransform]:
    """Transforms from ``[{Name: {arg: value}}, ...]``; an unknown name or argument is a one-line error."""
    transforms = []
    for i, op in enumerate(ops):
        if not (isinstance(op, dict) and len(op) == 1):
            raise ValueError(f"train.augment_ops[{i}] must be one mapping such as {{HorizontalFlip: {{p: 0.5}}}}, got {op!r}")
        name, args = next(iter(op.items()))
        cls = getattr(A, str(name), None)
        if not (isinstance(cls, type) and issubclass(cls, A.BasicTransform)):
            raise ValueError(f"train.augment_ops[{i}]: {name!r} is not an albumentations transform (e.g. HorizontalFlip, Affine, CoarseDropout)")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", UserWarning)  # albumentations only warns on an unknown argument
                transforms.append(cls(**(args or {})))
        except Exception as error:  # pydantic validation of albumentations' arguments
            first = str(error).strip().splitlines()
            raise ValueError(f"train.augment_ops[{i}] {name}: bad arguments {args!r} ({first[0] if first else error})") from None
    return transforms


def get_augment(name: str, seed: int = 0, ops: list[Any] | None = None) -> A.Compose:
    """The preset ``name``, or the free composition ``ops`` when given, as a seeded Compose."""
    transforms = compose_ops(ops) if ops is not None else AUGMENT.get(name)()
    return A.Compose(transforms, seed=seed)


def list_augments() -> list[str]:
    return AUGMENT.names()
