"""Training augmentation policies (albumentations), by name."""

from __future__ import annotations

from collections.abc import Callable

import albumentations as A

from trainables.registry import Registry

AUGMENT: Registry[Callable[[], A.Compose]] = Registry("augmentation policy")


@AUGMENT.register("none")
def no_augment() -> A.Compose:
    return A.Compose([])


@AUGMENT.register("flips")
def flips() -> A.Compose:
    return A.Compose([A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)])


@AUGMENT.register("light")
def light() -> A.Compose:
    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.5),
            A.RandomBrightnessContrast(brightness_limit=0.15, contrast_limit=0.15, p=0.5),
        ]
    )


def get_augment(name: str) -> A.Compose:
    return AUGMENT.get(name)()
