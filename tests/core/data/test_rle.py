
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from shared_data import shared_root

from core.data.rle import parse_rle, rle_decode, rle_encode, validate_rle

DATA = shared_root()
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


sized_masks = st.tuples(st.integers(1, 40), st.integers(1, 40)).flatmap(
    lambda shape: st.one_of(
        arrays(np.uint8, shape, elements=st.integers(0, 1)),
        arrays(np.uint8, shape, elements=st.sampled_from([0, 255])),
        st.just(np.zeros(shape, np.uint8)),
        st.just(np.ones(shape, np.uint8)),
    )
)


@settings(max_examples=200, deadline=None)
@given(mask=sized_masks, order=orders)
def test_round_trip_odd_even_empty_full(mask, order):
    rle = rle_encode(mask, order)
    np.testing.assert_array_equal(rle_decode(rle, mask.shape, order), mask != 0)
    if not mask.any():
        assert rle == ""
    if mask.all():
        assert rle == f"1 {mask.size}"


@settings(max_examples=100, deadline=None)
@given(height=st.integers(2, 30), width=st.integers(2, 30), data=st.data())
def test_a_run_that_wraps_a_column_is_one_run(height, width, data):
    """Column-major: the bottom of column j and the top of column j + 1 are neighbours, one run."""
    col = data.draw(st.integers(0, width - 2))
    below, above = data.draw(st.integers(1, height)), data.draw(st.integers(1, height))
    mask = np.zeros((height, width), np.uint8)
    mask[height - below :, col] = 1
    mask[:above, col + 1] = 1
    assert rle_encode(mask, "F") == f"{col * height + height - below + 1} {below + above}"
    for order in ORDERS_TESTED:
        np.testing.assert_array_equal(rle_decode(rle_encode(mask, order), mask.shape, order), mask)


@pytest.mark.parametrize("dtype", [bool, np.int32, np.float32])
def test_other_dtypes_encode_like_uint8(dtype):
    mask = np.zeros((5, 7), dtype)
    mask[1:3, 2:6] = 1
    assert rle_encode(mask, "F") == rle_encode(mask.astype(np.uint8), "F") == "12 2 17 2 22 2 27 2"


def test_views_and_fortran_arrays_encode_like_copies():
    rng = np.random.default_rng(0)
    mask = (rng.random((9, 12)) > 0.6).astype(np.uint8)
    for view in (np.asfortranarray(mask), mask[:, ::1], np.ascontiguousarray(mask.T).T):
        for order in ORDERS_TESTED:
            assert rle_encode(view, order) == rle_encode(mask.copy(), order)


ORDERS_TESTED = ("F", "C")


@settings(max_examples=200, deadline=None)
@given(data=st.data(), n_pixels=st.integers(1, 300))
def test_toggle_fill_matches_slice_writes(data, n_pixels):
    """The loop-free fill that long RLEs take, against one slice write per run, on any sorted runs."""
    from core.data.rle import _fill_by_toggles

    cuts = sorted(set(data.draw(st.lists(st.integers(0, n_pixels), min_size=2, max_size=40))))
    pairs = [(a, b) for a, b in zip(cuts[0::2], cuts[1::2], strict=False) if b > a]
    if not pairs:
        return
    starts, ends = np.array([a for a, _ in pairs]), np.array([b for _, b in pairs])
    expected = np.zeros(n_pixels, np.uint8)
    for a, b in pairs:
        expected[a:b] = 1
    flat = np.zeros(-(-n_pixels // 8) * 8, np.uint8)
    _fill_by_toggles(flat, starts, ends)
    np.testing.assert_array_equal(flat[:n_pixels], expected)
    assert not flat[n_pixels:].any()


def test_many_touching_runs_take_the_toggle_path_and_round_trip():
    mask = np.zeros((64, 80), np.uint8)
    mask[::2, ::3] = 1  # hundreds of one-pixel runs
    mask[:, 40:] = 1  # full columns: runs that wrap from one column into the next
    rle = rle_encode(mask, "F")
    assert len(rle.split()) // 2 > 100
    np.testing.assert_array_equal(rle_decode(rle, mask.shape, "F"), mask)
    touching = " ".join(f"{1 + 2 * k} 2" for k in range(200))  # 200 runs that touch: one long run
    assert rle_encode(rle_decode(touching, (40, 20), "F"), "F") == "1 400"
