"""The worst/best picture: post-processing, per-image scores, the choice of images, the drawing."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from core.metrics import PostProcessing
from trainables.pictures import COLOURS, image_scores, pick, post_process, worst_best_picture, write_png


def test_post_process_applies_threshold_and_minimum_area() -> None:
    probs = np.zeros((1, 2, 10, 10), np.uint8)
    probs[0, 0, :2, :2] = 200  # 4 pixels at p=0.78
    probs[0, 1, :5, :5] = 200  # 25 pixels
    post = PostProcessing(thresholds=[0.5, 0.5], min_area_fractions=[0.1, 0.1], class_scores=[1, 1], score=1)
    masks = post_process(probs, post)
    assert masks[0, 0].sum() == 0  # 4 < 10 pixels: emptied
    assert masks[0, 1].sum() == 25
    assert post_process(probs, PostProcessing([0.9, 0.9], [0, 0], [1, 1], 1)).sum() == 0


def test_scores_and_the_choice_of_images() -> None:
    truth = np.zeros((3, 1, 4, 4), bool)
    truth[1, 0, :2] = True
    truth[2, 0, :2] = True
    pred = truth.copy()
    pred[2, 0] = False  # image 2 misses its defect
    scores = image_scores(pred, truth)
    assert scores.tolist() == [1.0, 1.0, 0.0]
    worst, best = pick(scores, truth.reshape(3, -1).any(axis=1), 1)
    assert worst.tolist() == [2] and best.tolist() == [1]  # the best is one with a defect, not the empty one


def test_the_picture_draws_truth_and_prediction_in_class_colours(tmp_path: Path) -> None:
    images = [np.full((40, 60, 3), 128, np.uint8) for _ in range(2)]
    truth = np.zeros((2, 2, 40, 60), bool)
    truth[0, 1, 10:30, 10:30] = True
    pred = truth.copy()
    picture = worst_best_picture(images, pred, truth, np.array([0.2, 1.0]), ["a.jpg", "b.jpg"], k=1)
    path = tmp_path / "p.png"
    write_png(path, picture)
    back = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    assert back.shape == picture.shape
    green = np.array(COLOURS[1])
    assert (np.abs(back.astype(int) - green).sum(axis=2) < 30).any()  # class 2's outline is drawn


def test_a_small_image_with_a_long_name_keeps_its_whole_label_on_the_tile() -> None:
    from trainables.pictures import MIN_WIDTH, draw_tile

    image = np.full((200, 200, 3), 128, np.uint8)  # NEU-Seg's size
    masks = np.zeros((3, 200, 200), bool)
    tile = draw_tile(image, masks, masks, "worst 0.230 000375_crazing_long_name.jpg")
    assert tile.shape[1] == MIN_WIDTH  # enlarged so outlines and label stay readable
    band = tile[:4]
    black = (band.sum(axis=2) == 0).all(axis=0)
    assert black[0] and not black[-1]  # the label's box starts at the left and ends inside the tile


def test_the_legend_goes_on_two_lines_when_the_picture_is_narrow() -> None:
    from trainables.pictures import _legend

    wide, narrow = _legend(1600, 3), _legend(MIN_W := 412, 3)
    assert wide.shape[0] < narrow.shape[0] and narrow.shape[1] == MIN_W
    swatches = (np.abs(narrow.astype(int) - np.array(COLOURS[0])).sum(axis=2) < 10)
    rows = np.nonzero(swatches.any(axis=1))[0]
    assert rows.min() > 28  # class swatches below the title, not over it
