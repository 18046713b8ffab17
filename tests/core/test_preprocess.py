import numpy as np
import pytest
import torch

from core.preprocess import MEAN, MULTIPLE, STD, resize_image, resize_masks, resize_probs, scaled_size, to_tensor


@pytest.mark.parametrize(
    ("shape", "scale", "multiple", "expected"),
    [
        ((256, 1600), 0.5, MULTIPLE, (128, 800)),
        ((256, 1600), 0.25, 1, (64, 400)),  # the default OOF scale
        ((256, 1600), 0.3, 32, (64, 480)),  # 76.8 -> 64, 480 -> 480
        ((256, 1600), 0.35, 32, (96, 576)),  # 89.6 -> 96, 560 -> 576
        ((256, 1600), 0.01, 32, (32, 32)),  # never below one multiple
        ((256, 1600), 0.25, 32, (64, 384)),  # 400 = 12.5 x 32: a half goes to the even count, 12
        ((256, 1600), 0.27, 32, (64, 448)),  # 432 = 13.5 x 32: to the even count, 14
        ((101, 37), 1.0, 1, (101, 37)),
        ((100, 60), 0.333, 1, (33, 20)),
        ((64, 64), 2.0, 32, (128, 128)),
    ],
)
def test_scaled_size(shape, scale, multiple, expected):
    assert scaled_size(shape, scale, multiple) == expected


@pytest.mark.parametrize("seed", range(3))
def test_scaled_size_is_the_nearest_multiple(seed):
    rng = np.random.default_rng(seed)
    for _ in range(200):
        side, scale, multiple = int(rng.integers(1, 3000)), float(rng.uniform(0.01, 2)), int(rng.choice([1, 8, 32]))
        (out, _) = scaled_size((side, side), scale, multiple)
        assert out % multiple == 0 and out >= multiple
        if out > multiple:
            assert abs(out - side * scale) <= multiple / 2 + 1e-9


@pytest.mark.parametrize("scale", [0, -0.5])
def test_scaled_size_rejects_non_positive_scale(scale):
    with pytest.raises(ValueError, match=f"scale must be > 0, got {scale}"):
        scaled_size((10, 10), scale)


def test_scaled_size_rejects_a_multiple_below_one():
    with pytest.raises(ValueError, match="multiple must be an int >= 1, got 0"):
        scaled_size((10, 10), 0.5, 0)


def test_resize_masks_keeps_a_single_pixel_at_quarter_scale():
    masks = np.zeros((2, 64, 64), np.uint8)
    masks[0, 37, 50] = 1  # class 0: one pixel; class 1: empty
    out = resize_masks(masks, (16, 16))
    assert out.shape == (2, 16, 16) and out.dtype == np.uint8
    assert out[0].sum() == 1 and out[0, 37 // 4, 50 // 4] == 1
    assert out[1].sum() == 0


def test_resize_masks_keeps_every_single_pixel_non_empty_at_an_odd_scale():
    for row in range(20):
        for col in range(30):
            mask = np.zeros((1, 20, 30), np.uint8)
            mask[0, row, col] = 1
            out = resize_masks(mask, (5, 7))[0]
            assert out.sum() == 1, (row, col)
            (r,), (c,) = np.nonzero(out)
            assert abs(r - row * 5 / 20) <= 1 and abs(c - col * 7 / 30) <= 1, (row, col, r, c)


def test_resize_masks_blocks_and_identity():
    masks = np.zeros((1, 64, 64), np.uint8)
    masks[0, :32, 16:48] = 1
    out = resize_masks(masks, (16, 16))
    expected = np.zeros((16, 16), np.uint8)
    expected[:8, 4:12] = 1
    np.testing.assert_array_equal(out[0], expected)
    assert set(np.unique(out)) == {0, 1}
    assert resize_masks(masks, (64, 64)) is masks
    np.testing.assert_array_equal(resize_masks(out, (64, 64)), masks)  # upsampling a block is exact


def test_resize_masks_keeps_empty_masks_empty():
    assert resize_masks(np.zeros((4, 256, 1600), np.uint8), (64, 400)).sum() == 0


def test_resize_image_and_probs():
    image = np.full((8, 12, 3), 200, np.uint8)
    assert resize_image(image, (8, 12)) is image
    small = resize_image(image, (4, 6))
    assert small.shape == (4, 6, 3) and (small == 200).all()
    probs = torch.full((2, 4, 8, 12), 0.25)
    assert resize_probs(probs, (8, 12)) is probs
    out = resize_probs(probs, (4, 3))
    assert out.shape == (2, 4, 4, 3)
    torch.testing.assert_close(out, torch.full((2, 4, 4, 3), 0.25))


def test_to_tensor_shape_dtype_and_normalisation():
    images = np.zeros((2, 4, 5, 3), np.uint8)
    images[..., 0] = 255  # red
    x = to_tensor(images)
    assert x.shape == (2, 3, 4, 5) and x.dtype == torch.float32 and x.is_contiguous()
    torch.testing.assert_close(x[:, 0], torch.full((2, 4, 5), float((255 - MEAN[0]) / STD[0])))
    torch.testing.assert_close(x[:, 1], torch.full((2, 4, 5), float(-MEAN[1] / STD[1])))
    mean_image = np.broadcast_to(np.rint(MEAN).astype(np.uint8), (1, 2, 2, 3))
    assert to_tensor(mean_image).abs().max() < 0.01  # the ImageNet mean maps to about zero
