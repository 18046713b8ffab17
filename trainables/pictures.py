"""What a person looks at after a trial: the worst and best validation images, truth and prediction drawn over.

Each tile is one validation image at up to ``MAX_WIDTH`` pixels wide, the truth outlined and the
post-processed prediction filled in each class's colour, and the image's score (mean pair Dice over its
classes after the trial's tuned thresholds and minimum areas) in the corner. Pure numpy/OpenCV.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from core.atomic import atomic_path
from core.metrics import PostProcessing, threshold_levels

# RGB colours per class: red, green, blue, yellow, magenta, cyan (then repeating).
COLOURS = [(230, 40, 40), (40, 200, 40), (50, 110, 255), (240, 220, 0), (220, 0, 220), (0, 220, 220)]
MAX_WIDTH = 800
MIN_WIDTH = 320  # smaller images are enlarged so the label and the outlines stay readable


def post_process(probs_u8: np.ndarray, post: PostProcessing) -> np.ndarray:
    """Binary masks (n, C, h, w) after each class's threshold and minimum area (a fraction of the image)."""
    levels = threshold_levels(np.asarray(post.thresholds))
    masks = probs_u8 >= levels[None, :, None, None]
    area = masks.sum(axis=(2, 3))
    keep = area >= np.asarray(post.min_area_fractions)[None, :] * probs_u8.shape[2] * probs_u8.shape[3]
    return masks & keep[:, :, None, None]


def image_scores(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Mean pair Dice per image (1 for a pair empty in both)."""
    pred, truth = pred.astype(bool), truth.astype(bool)
    inter = (pred & truth).sum(axis=(2, 3))
    total = pred.sum(axis=(2, 3)) + truth.sum(axis=(2, 3))
    return np.where(total == 0, 1.0, 2 * inter / np.maximum(total, 1)).mean(axis=1)


def pick(scores: np.ndarray, has_truth: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the k worst images and the k best; the best are taken among images with a defect when
    there are any (an empty image predicted empty scores 1 and shows nothing)."""
    order = np.argsort(scores, kind="stable")
    worst = order[:k]
    pool = order[has_truth[order]] if has_truth.any() else order
    best = pool[::-1][:k]
    return worst, best


def draw_tile(image: np.ndarray, pred: np.ndarray, truth: np.ndarray, label: str) -> np.ndarray:
    """One RGB image with the prediction filled (40% opacity) and the truth outlined, per class colour."""
    height, width = image.shape[:2]
    if width > MAX_WIDTH or width < MIN_WIDTH:
        target = MAX_WIDTH if width > MAX_WIDTH else MIN_WIDTH
        height, width = round(height * target / width), target
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if target == MAX_WIDTH else cv2.INTER_LINEAR)
    tile = image.astype(np.float32)
    for c in range(pred.shape[0]):
        colour = np.array(COLOURS[c % len(COLOURS)], np.float32)
        fill = cv2.resize(pred[c].astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)
        tile[fill] = 0.6 * tile[fill] + 0.4 * colour
    tile = tile.astype(np.uint8)
    for c in range(truth.shape[0]):
        outline = cv2.resize(truth[c].astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(outline, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(tile, contours, -1, COLOURS[c % len(COLOURS)], 2)
    scale = max(0.4, min(width, height) / 250)
    (text_w, text_h), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    if text_w + 8 > width:  # a long image name: a smaller font, so the whole label stays on the tile
        scale *= (width - 8) / text_w
        (text_w, text_h), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(tile, (0, 0), (text_w + 8, text_h + 10), (0, 0, 0), -1)
    cv2.putText(tile, label, (4, text_h + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


LEGEND_TITLE = "worst (left) / best (right): truth outlined, prediction filled"


def _legend(width: int, classes: int) -> np.ndarray:
    """The title, then the class swatches: on one line when both fit the picture's width, else two."""
    (title_w, _), _ = cv2.getTextSize(LEGEND_TITLE, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
    one_line = 6 + title_w + 12 + 70 * classes <= width
    strip = np.full((28 if one_line else 52, width, 3), 255, np.uint8)
    cv2.putText(strip, LEGEND_TITLE, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    x, y = (width - 70 * classes, 8) if one_line else (6, 32)
    for c in range(classes):
        cv2.rectangle(strip, (x + 70 * c, y), (x + 70 * c + 14, y + 14), COLOURS[c % len(COLOURS)], -1)
        cv2.putText(strip, f"class {c + 1}", (x + 70 * c + 17, y + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def worst_best_picture(images: list[np.ndarray], pred: np.ndarray, truth: np.ndarray, scores: np.ndarray, ids: list[str], k: int = 4) -> np.ndarray:
    """An RGB grid: the k worst validation images in the left column, the k best in the right."""
    worst, best = pick(scores, truth.reshape(len(truth), -1).any(axis=1), min(k, len(scores)))
    columns = []
    for name, chosen in (("worst", worst), ("best", best)):
        tiles = [draw_tile(images[i], pred[i], truth[i], f"{name} {scores[i]:.3f} {ids[i]}") for i in chosen]
        columns.append(np.concatenate([np.pad(t, ((0, 6), (0, 6), (0, 0)), constant_values=255) for t in tiles]))
    rows = max(len(c) for c in columns)
    columns = [np.pad(c, ((0, rows - len(c)), (0, 0), (0, 0)), constant_values=255) for c in columns]
    grid = np.concatenate(columns, axis=1)
    return np.concatenate([_legend(grid.shape[1], pred.shape[1]), grid])


def write_png(path: Path, picture_rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        ok, data = cv2.imencode(".png", cv2.cvtColor(picture_rgb, cv2.COLOR_RGB2BGR))
        if not ok:
            raise ValueError(f"{path}: could not encode the picture as PNG")
        Path(tmp).write_bytes(data.tobytes())
