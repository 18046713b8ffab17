"""The offline scorer: a submission against known labels, beside the all-empty score."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from core.data.rle import rle_encode
from ensembling.score import main, score_submission


@pytest.fixture
def holdout(tmp_path: Path) -> Path:
    (tmp_path / "images").mkdir()
    for name in ("a.jpg", "b.jpg"):
        cv2.imwrite(str(tmp_path / "images" / name), np.zeros((8, 16, 3), np.uint8))
    mask = np.zeros((8, 16), np.uint8)
    mask[2:5, 3:9] = 1
    (tmp_path / "truth.csv").write_text(f"ImageId,ClassId,EncodedPixels\na.jpg,2,{rle_encode(mask)}\n")
    return tmp_path


def _submission(path: Path, rle_a2: str) -> Path:
    rows = [("a.jpg", c, rle_a2 if c == 2 else "") for c in (1, 2)] + [("b.jpg", c, "") for c in (1, 2)]
    path.write_text("ImageId,EncodedPixels,ClassId\n" + "".join(f"{i},{r},{c}\n" for i, c, r in rows))
    return path


def test_truth_scores_one_and_empty_scores_the_empty_share(holdout: Path) -> None:
    mask = np.zeros((8, 16), np.uint8)
    mask[2:5, 3:9] = 1
    perfect = score_submission(_submission(holdout / "p.csv", rle_encode(mask)), holdout / "truth.csv", holdout / "images")
    assert perfect == {"score": 1.0, "all_empty": 0.75, "pairs": 4, "metric": "dice_pairs"}
    empty = score_submission(_submission(holdout / "e.csv", ""), holdout / "truth.csv", holdout / "images")
    assert empty["score"] == pytest.approx(0.75)


def test_half_overlap_scores_its_dice(holdout: Path) -> None:
    half = np.zeros((8, 16), np.uint8)
    half[2:5, 3:6] = 1  # 9 of the 18 true pixels, nothing else: Dice = 2 * 9 / (9 + 18)
    result = score_submission(_submission(holdout / "h.csv", rle_encode(half)), holdout / "truth.csv", holdout / "images")
    assert result["score"] == pytest.approx((3 + 2 * 9 / 27) / 4)


def test_missing_image_is_a_one_line_error(holdout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sub = _submission(holdout / "p.csv", "")
    assert main([f"submission={sub}", f"truth={holdout / 'truth.csv'}", f"images={holdout / 'nowhere'}"]) == 2
    assert "image file not found" in capsys.readouterr().err


def test_iou_dataset_and_unknown_metric(holdout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    half = np.zeros((8, 16), np.uint8)
    half[2:5, 3:6] = 1  # IoU of class 2 = 9 / 18; class 1 is empty everywhere: IoU 1 by convention
    result = score_submission(_submission(holdout / "h.csv", rle_encode(half)), holdout / "truth.csv", holdout / "images", "iou_dataset")
    assert result["score"] == pytest.approx((1 + 9 / 18) / 2)
    assert result["all_empty"] == pytest.approx((1 + 0) / 2)
    sub = holdout / "h.csv"
    assert main([f"submission={sub}", f"truth={holdout / 'truth.csv'}", f"images={holdout / 'images'}", "metric=dice_pixels"]) == 2
    assert "Unknown metric 'dice_pixels'. Available options are: dice_image, dice_pairs, iou_dataset" in capsys.readouterr().err
