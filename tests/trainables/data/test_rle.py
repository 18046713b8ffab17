from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from trainables.data.rle import parse_rle, rle_decode, rle_encode, validate_rle

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
REAL_SUBSET = DATA / "severstal_real" / "train_real_subset.csv"

small_masks = st.tuples(st.integers(1, 9), st.integers(1, 9)).flatmap(
    lambda shape: arrays(np.uint8, shape, elements=st.integers(0, 1))
)
orders = st.sampled_from(["F", "C"])


@settings(max_examples=150, deadline=None)
@given(mask=small_masks, order=orders)
def test_round_trip(mask, order):
    rle = rle_encode(mask, order)
    decoded = rle_decode(rle, mask.shape, order)
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, mask)
    validate_rle(rle, mask.size)  # our own output is always one a contest accepts


@settings(max_examples=150, deadline=None)
@given(mask=small_masks, order=orders)
def test_encoding_is_canonical(mask, order):
    """Sorted runs, every run separated from the next by at least one background pixel."""
    values = [int(v) for v in rle_encode(mask, order).split()]
    starts, lengths = np.array(values[0::2]), np.array(values[1::2])
    assert (lengths >= 1).all()
    assert (starts[1:] > starts[:-1] + lengths[:-1]).all()
    assert lengths.sum() == int(mask.astype(bool).sum())


@settings(max_examples=100, deadline=None)
@given(mask=small_masks)
def test_orders_agree_through_transpose(mask):
    # Column-major over (H, W) visits pixels in the row-major order of the transposed mask.
    assert rle_encode(mask, "F") == rle_encode(np.ascontiguousarray(mask.T), "C")


def test_known_answers_on_a_tiny_mask():
    mask = np.zeros((3, 2), np.uint8)
    mask[0, 0] = mask[1, 0] = 1
    # "F" visits (0,0) (1,0) (2,0) (0,1) ...: pixels 1 and 2, one run.
    assert rle_encode(mask, "F") == "1 2"
    # "C" visits (0,0) (0,1) (1,0) ...: pixels 1 and 3, two runs.
    assert rle_encode(mask, "C") == "1 1 3 1"
    np.testing.assert_array_equal(rle_decode("1 2", (3, 2), "F"), mask)
    np.testing.assert_array_equal(rle_decode("1 1 3 1", (3, 2), "C"), mask)


def test_last_pixel_and_full_mask():
    full = np.ones((2, 3), np.uint8)
    assert rle_encode(full) == "1 6"
    last = np.zeros((2, 3), np.uint8)
    last[1, 2] = 1
    assert rle_encode(last, "F") == rle_encode(last, "C") == "6 1"


def test_empty_mask_and_empty_strings():
    assert rle_encode(np.zeros((4, 5), np.uint8)) == ""
    for empty in ("", "  ", "nan", None, float("nan")):
        assert rle_decode(empty, (4, 5)).sum() == 0


def test_any_nonzero_value_is_foreground():
    mask = np.array([[0, 255], [7, 0]], np.uint8)
    assert rle_encode(mask, "F") == "2 2"


def test_touching_runs_are_merged_on_reencode():
    mask = rle_decode("1 2 3 2", (3, 3), "F")
    assert mask.sum() == 4
    assert rle_encode(mask, "F") == "1 4"


def test_unsorted_and_overlapping_runs_decode_to_a_binary_mask_and_reencode_sorted():
    mask = rle_decode("6 2 1 3 2 2", (3, 3), "F")
    assert set(np.unique(mask)) == {0, 1}
    assert rle_encode(mask, "F") == "1 3 6 2"


def test_parse_rle_gives_zero_based_starts():
    starts, lengths = parse_rle("3 2 10 1", 10)
    assert starts.tolist() == [2, 9] and lengths.tolist() == [2, 1]


@pytest.mark.parametrize(
    ("rle", "message"),
    [
        ("1 2 3", r"even count of numbers .* got 3"),
        ("5 2", r"run ends at pixel 6, outside the image of 5 pixels"),
        ("0 2", r"starts are 1-based and must be >= 1, got 0"),
        ("-3 2", r"must be >= 1, got -3"),
        ("1 0", r"run lengths must be >= 1, got 0"),
        ("1 2.5", r"token that is not an integer: '2\.5'"),
        ("1 x", r"token that is not an integer: 'x'"),
        ("1 --2", r"token that is not an integer: '--2'"),
        ("1 1_0", r"token that is not an integer: '1_0'"),
        ("1 99999999999999999999999", r"number too large for any image: '99999999999999999999999'"),
        # start + length would wrap around int64 and pass a naive end check
        ("9223372036854775807 9223372036854775807", r"run ends at pixel 18446744073709551613, outside"),
    ],
)
def test_bad_rle_is_a_value_error_naming_the_problem(rle, message):
    with pytest.raises(ValueError, match=message):
        parse_rle(rle, 5)
    with pytest.raises(ValueError, match=message):
        rle_decode(rle, (5, 1))


def test_run_ending_exactly_at_last_pixel_is_valid():
    assert rle_decode("4 2", (5, 1)).ravel().tolist() == [0, 0, 0, 1, 1]


@pytest.mark.parametrize(
    ("rle", "message"),
    [
        ("1 3 3 2", r"run 2 starts at 3 before run 1 ends at 3"),  # overlap by one pixel
        ("6 2 1 2", r"run 2 starts at 1 before run 1 ends at 7"),  # unsorted
        ("1 2 6 2 4 1", r"run 3 starts at 4 before run 2 ends at 7"),
    ],
)
def test_validate_rle_rejects_overlapping_or_unsorted_runs(rle, message):
    with pytest.raises(ValueError, match=message):
        validate_rle(rle, 10)


def test_validate_rle_accepts_sorted_touching_runs_and_empty():
    validate_rle("1 2 3 2", 10)
    validate_rle("", 10)
    with pytest.raises(ValueError, match="outside the image of 10 pixels"):
        validate_rle("9 3", 10)


@pytest.mark.parametrize(("bad", "message"), [(np.zeros(4), r"2-D mask, got shape \(4,\)"), (np.zeros((2, 2)), None)])
def test_encode_checks_dimensions(bad, message):
    if message is None:
        assert rle_encode(bad) == ""
    else:
        with pytest.raises(ValueError, match=message):
            rle_encode(bad)


def test_unknown_order():
    with pytest.raises(ValueError, match=r"order must be one of \('F', 'C'\).*got 'A'"):
        rle_encode(np.zeros((2, 2)), "A")
    with pytest.raises(ValueError, match="got 'row'"):
        rle_decode("1 1", (2, 2), "row")


def test_every_real_severstal_row_round_trips():
    if not REAL_SUBSET.is_file():
        pytest.skip(f"real Severstal labels not found at {REAL_SUBSET}")
    rows = pd.read_csv(REAL_SUBSET, dtype=str, keep_default_na=False)
    assert len(rows) == 1429
    for image_id, rle in zip(rows["ImageId"], rows["EncodedPixels"], strict=True):
        mask = rle_decode(rle, (256, 1600), "F")
        assert mask.any(), image_id
        assert rle_encode(mask, "F") == rle, image_id
