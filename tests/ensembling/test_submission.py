from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.data.rle import rle_decode, rle_encode
from ensembling.runtime.submission import (
    SampleLayout,
    build_submission,
    read_sample,
    read_submission,
    validate_submission,
    write_submission,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "severstal_real"
REAL_SUBMISSION = DATA / "submission_example_zdaiot" / "submission_tta.csv"
TRAIN_HEAD = DATA / "train_csv_head_PiotrWegrzyn" / "train_head.csv"
SHAPE = (8, 16)  # tiny images: 128 pixels
IMAGES = ["b.jpg", "a.jpg"]  # deliberately not sorted: the sample's order must win


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _sample(tmp_path: Path, columns: tuple[str, ...]) -> Path:
    """A sample with 2 images x 4 classes in the given column order, placeholders '1 1'."""
    rows = []
    for image in IMAGES:
        for cls in (1, 2, 3, 4):
            values = {"ImageId_ClassId": f"{image}_{cls}", "ImageId": image, "ClassId": str(cls)}
            rows.append(",".join(values.get(c, "1 1") for c in columns))
    return _write(tmp_path / "sample.csv", ",".join(columns) + "\n" + "\n".join(rows) + "\n")


def _rles(layout: SampleLayout) -> dict[tuple[str, int], str]:
    """A distinct mask per key, some empty, encoded column-major like Severstal."""
    rng = np.random.default_rng(0)
    out = {}
    for image, cls in layout.keys:
        mask = (rng.random(SHAPE) < 0.3) if cls != 3 else np.zeros(SHAPE, bool)
        out[(image, cls)] = rle_encode(mask, "F")
    return out


LAYOUT_COLUMNS = [
    ("pairs", ("ImageId_ClassId", "EncodedPixels")),
    ("columns", ("ImageId", "ClassId", "EncodedPixels")),
    ("columns", ("ImageId", "EncodedPixels", "ClassId")),
    ("columns", ("ClassId", "ImageId", "EncodedPixels")),
]


@pytest.mark.parametrize(("kind", "columns"), LAYOUT_COLUMNS)
def test_read_sample_detects_layout(tmp_path: Path, kind: str, columns: tuple[str, ...]) -> None:
    layout = read_sample(_sample(tmp_path, columns))
    assert layout.kind == kind
    assert layout.columns == columns
    assert layout.keys[:5] == [("b.jpg", 1), ("b.jpg", 2), ("b.jpg", 3), ("b.jpg", 4), ("a.jpg", 1)]
    assert layout.image_ids() == IMAGES
    assert layout.class_ids() == [1, 2, 3, 4]


@pytest.mark.parametrize(("kind", "columns"), LAYOUT_COLUMNS)
def test_round_trip_keeps_sample_order(tmp_path: Path, kind: str, columns: tuple[str, ...]) -> None:
    layout = read_sample(_sample(tmp_path, columns))
    rles = _rles(layout)
    frame = build_submission(layout, dict(reversed(list(rles.items()))))
    validate_submission(frame, layout, {image: SHAPE for image in IMAGES})
    out = tmp_path / "submission.csv"
    write_submission(frame, out)

    assert read_submission(out, layout) == rles
    assert list(read_submission(out, layout)) == layout.keys
    lines = out.read_text().splitlines()
    assert lines[0] == ",".join(columns)
    written = pd.read_csv(out, dtype=str, keep_default_na=False)
    if kind == "pairs":
        assert list(written["ImageId_ClassId"]) == [f"{i}_{c}" for i, c in layout.keys]
    else:
        assert list(zip(written["ImageId"], written["ClassId"], strict=True)) == [(i, str(c)) for i, c in layout.keys]
    # class 3 masks are empty and must be written as empty cells, not "nan" or quotes
    assert rles[("b.jpg", 3)] == ""
    row = lines[1 + layout.keys.index(("b.jpg", 3))].split(",")
    assert row[columns.index("EncodedPixels")] == ""
    assert not (tmp_path / "submission.csv.tmp").exists()


def test_round_trip_masks_decode_back(tmp_path: Path) -> None:
    layout = read_sample(_sample(tmp_path, ("ImageId", "EncodedPixels", "ClassId")))
    mask = np.zeros(SHAPE, np.uint8)
    mask[2:5, 3:9] = 1
    rles = {key: "" for key in layout.keys} | {("a.jpg", 2): rle_encode(mask, "F")}
    write_submission(build_submission(layout, rles), tmp_path / "out.csv")
    back = read_submission(tmp_path / "out.csv", layout)
    np.testing.assert_array_equal(rle_decode(back[("a.jpg", 2)], SHAPE, "F"), mask)


def test_read_submission_accepts_the_other_layout(tmp_path: Path) -> None:
    layout = read_sample(_sample(tmp_path, ("ImageId_ClassId", "EncodedPixels")))
    rows = [f"{cls},{image},{'5 2' if cls == 1 else ''}" for image in reversed(IMAGES) for cls in (4, 3, 2, 1)]
    path = _write(tmp_path / "final.csv", "ClassId,ImageId,EncodedPixels\n" + "\n".join(rows) + "\n")
    back = read_submission(path, layout)
    assert list(back) == layout.keys
    assert back[("b.jpg", 1)] == "5 2" and back[("b.jpg", 2)] == ""


@pytest.mark.skipif(not REAL_SUBMISSION.exists(), reason=f"real Severstal files not found under {DATA}")
def test_real_first_layout_submission_parses_and_validates() -> None:
    layout = read_sample(REAL_SUBMISSION)
    assert layout.kind == "pairs"
    assert (len(layout.keys), len(layout.image_ids()), layout.class_ids()) == (7204, 1801, [1, 2, 3, 4])
    frame = pd.read_csv(REAL_SUBMISSION, dtype=str, keep_default_na=False)
    assert (frame["EncodedPixels"] != "").sum() > 0  # the check below must look at real RLEs
    validate_submission(frame, layout, {image: (256, 1600) for image in layout.image_ids()})
    rles = read_submission(REAL_SUBMISSION, layout)
    assert list(rles.values()) == list(frame["EncodedPixels"])


@pytest.mark.skipif(not TRAIN_HEAD.exists(), reason=f"real Severstal files not found under {DATA}")
def test_real_train_head_parses() -> None:
    layout = read_sample(TRAIN_HEAD)
    assert layout.kind == "pairs"
    assert layout.keys[0] == ("0002cc93b.jpg", 1)
    assert len(layout.keys) == 4 * len(layout.image_ids())


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("a,b\n1,2\n", r"sample\.csv: expected columns ImageId_ClassId,EncodedPixels or .*got \['a', 'b'\]"),
        ("ImageId,EncodedPixels\nx.jpg,\n", r"expected columns .*got \['ImageId', 'EncodedPixels'\]"),
        ("ImageId,ClassId,EncodedPixels\nx.jpg,1,\nx.jpg,0,\n", r"line 3: ClassId 0 \(one row per image\) must be on every row or on none"),
        ("ImageId,ClassId,EncodedPixels\nx.jpg,0,\ny.jpg,2,\n", r"line 3: ClassId 0 \(one row per image\) must be on every row or on none"),
        ("ImageId,ClassId,EncodedPixels\nx.jpg,-1,\n", r"line 2: ClassId must be a positive integer, got '-1'"),
        ("ImageId,ClassId,EncodedPixels\nx.jpg,one,\n", r"line 2: ClassId must be a positive integer, got 'one'"),
        ("ImageId_ClassId,EncodedPixels\nx.jpg_1,\nx.jpg,\n", r"line 3: ImageId_ClassId must look like .*'x\.jpg'"),
        ("ImageId_ClassId,EncodedPixels\nx.jpg_-1,\n", r"line 2: .*got 'x\.jpg_-1'"),
        (
            "ImageId_ClassId,EncodedPixels\nx.jpg_1,\nx.jpg_2,\nx.jpg_1,\n",
            r"duplicate key \('x\.jpg', 1\) on line 4 \(first on line 2\)",
        ),
        ("ImageId_ClassId,EncodedPixels\n", r"lists no rows"),
    ],
)
def test_read_sample_rejects_bad_files(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        read_sample(_write(tmp_path / "sample.csv", text))


def test_build_submission_names_missing_key(tmp_path: Path) -> None:
    layout = read_sample(_sample(tmp_path, ("ImageId_ClassId", "EncodedPixels")))
    rles = _rles(layout)
    del rles[("a.jpg", 4)]
    with pytest.raises(ValueError, match=r"no RLE for sample key \('a\.jpg', 4\) \(1 missing"):
        build_submission(layout, rles)


@pytest.fixture
def valid(tmp_path: Path) -> tuple[SampleLayout, pd.DataFrame]:
    layout = read_sample(_sample(tmp_path, ("ImageId", "ClassId", "EncodedPixels")))
    table = build_submission(layout, {key: "" for key in layout.keys})
    validate_submission(table, layout, {image: SHAPE for image in IMAGES})  # the baseline passes
    frame = pd.DataFrame(table.data, columns=table.columns)  # validation also takes a DataFrame: easy to break below
    validate_submission(frame, layout, {image: SHAPE for image in IMAGES})
    return layout, frame


def _set_rle(frame: pd.DataFrame, image: str, cls: int, rle: str) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[(frame["ImageId"] == image) & (frame["ClassId"] == cls), "EncodedPixels"] = rle
    return frame


@pytest.mark.parametrize(
    ("break_it", "match"),
    [
        (lambda f: f.drop(index=5), r"missing key \('a\.jpg', 2\)"),
        (lambda f: pd.concat([f, f.iloc[[6]]]), r"duplicate key \('a\.jpg', 3\) on line 10 \(first on line 8\)"),
        (
            lambda f: pd.concat([f, pd.DataFrame({"ImageId": ["c.jpg"], "ClassId": [1], "EncodedPixels": [""]})]),
            r"extra key \('c\.jpg', 1\)",
        ),
        (lambda f: f.rename(columns={"ClassId": "Class"}), r"columns must be the sample's"),
        (lambda f: _set_rle(f, "a.jpg", 2, "1 2 5"), r"image 'a\.jpg' class 2: .*even count of numbers.*got 3"),
        (lambda f: _set_rle(f, "b.jpg", 4, "121 9"), r"image 'b\.jpg' class 4: RLE run ends at pixel 129, outside"),
        (lambda f: _set_rle(f, "b.jpg", 1, "10 5 12 3"), r"image 'b\.jpg' class 1: RLE runs must be sorted and must not"),
        (lambda f: _set_rle(f, "b.jpg", 1, "1 x"), r"image 'b\.jpg' class 1: .*not an integer: 'x'"),
    ],
)
def test_validate_submission_rejects(valid: tuple[SampleLayout, pd.DataFrame], break_it, match: str) -> None:
    layout, frame = valid
    with pytest.raises(ValueError, match=match):
        validate_submission(break_it(frame), layout, {image: SHAPE for image in IMAGES})


def test_validate_submission_needs_shape_of_images_with_masks(valid: tuple[SampleLayout, pd.DataFrame]) -> None:
    layout, frame = valid
    frame = _set_rle(frame, "a.jpg", 1, "1 3")
    validate_submission(frame, layout, {"a.jpg": SHAPE})  # b.jpg has no masks, so needs no shape
    with pytest.raises(ValueError, match=r"no shape for image 'a\.jpg'"):
        validate_submission(frame, layout, {"b.jpg": SHAPE})


def test_validate_submission_run_edge_is_inside(valid: tuple[SampleLayout, pd.DataFrame]) -> None:
    layout, frame = valid
    # 8 x 16 = 128 pixels: a run of 9 from pixel 120 ends on pixel 128, the last one
    validate_submission(_set_rle(frame, "b.jpg", 4, "120 9"), layout, {i: SHAPE for i in IMAGES})
    validate_submission(_set_rle(frame, "b.jpg", 4, "1 5 6 3"), layout, {i: SHAPE for i in IMAGES})


def test_write_submission_failure_leaves_existing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "submission.csv"
    out.write_text("old content\n")
    frame = pd.DataFrame({"ImageId_ClassId": ["x.jpg_1"], "EncodedPixels": ["1 2"]})

    def half_write(self: pd.DataFrame, path, *args, **kwargs) -> None:
        Path(path).write_text("ImageId_ClassId,Enc")  # a partial file, then the crash
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_write)
    with pytest.raises(OSError, match="disk full"):
        write_submission(frame, out)
    assert out.read_text() == "old content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["submission.csv"]


def test_write_submission_replaces_existing_file(tmp_path: Path) -> None:
    out = tmp_path / "submission.csv"
    out.write_text("old content\n")
    write_submission(pd.DataFrame({"ImageId_ClassId": ["x.jpg_1", "x.jpg_2"], "EncodedPixels": ["1 2", ""]}), out)
    assert out.read_text().splitlines() == ["ImageId_ClassId,EncodedPixels", "x.jpg_1,1 2", "x.jpg_2,"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["submission.csv"]


def test_validate_submission_treats_nan_as_empty(valid: tuple[SampleLayout, pd.DataFrame]) -> None:
    layout, frame = valid
    frame = frame.assign(EncodedPixels=[float("nan")] * (len(frame) - 1) + ["1 3"])  # read_csv's default
    validate_submission(frame, layout, {image: SHAPE for image in IMAGES})
    outside = frame.assign(EncodedPixels=frame["EncodedPixels"].replace("1 3", "198 3"))
    with pytest.raises(ValueError, match=r"image 'a\.jpg' class 4: RLE run ends at pixel 200"):
        validate_submission(outside, layout, {image: SHAPE for image in IMAGES})


def test_a_per_image_sample_expands_to_every_class(tmp_path: Path) -> None:
    """Kaggle's final Severstal sample listed each test image once, with ClassId 0 and a full mask."""
    sample = tmp_path / "sample_submission.csv"
    sample.write_text("ImageId,EncodedPixels,ClassId\nb.jpg,1 409600,0\na.jpg,1 409600,0\n")
    layout = read_sample(sample).for_classes([1, 2, 3, 4])
    assert layout.keys == [("b.jpg", c) for c in (1, 2, 3, 4)] + [("a.jpg", c) for c in (1, 2, 3, 4)]
    assert layout.columns == ("ImageId", "EncodedPixels", "ClassId")
    frame = build_submission(layout, {key: "" for key in layout.keys})
    assert list(frame.columns) == ["ImageId", "EncodedPixels", "ClassId"] and len(frame) == 8


def test_a_per_class_sample_is_not_expanded(tmp_path: Path) -> None:
    sample = tmp_path / "sample_submission.csv"
    sample.write_text("ImageId,EncodedPixels,ClassId\na.jpg,1 1,3\n")
    layout = read_sample(sample)
    assert layout.for_classes([1, 2, 3, 4]) == layout
