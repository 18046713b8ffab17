"""Training augmentation policies (albumentations), by name."""

from __future__ import annotations

from collections.abc import Callable

import albumentations as A

from trainables.registry import Registry

# A policy returns its transforms; get_augment wraps them in a seeded Compose, so a trial reruns exactly.
AUGMENT: Registry[Callable[[], list[A.BasicTransform]]] = Registry("augmentation policy")


@AUGMENT.register("none")
def no_augment() -> list[A.BasicTransform]:
    return []


@AUGMENT.register("flips")
def flips() -> list[A.BasicTransform]:
    return [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)]


@AUGMENT.register("light")
def light() -> list[A.BasicTransform]:
    return [
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.15, contrast_limit=0.15, p=0.5),
    ]


def get_augment(name: str, seed: int = 0) -> A.Compose:
    return A.Compose(AUGMENT.get(name)(), seed=seed)
