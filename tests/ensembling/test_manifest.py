"""The typed manifest: what select writes reads back equal, old and unknown fields survive, bad fields name themselves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ensembling.runtime.manifest import CLASSIFICATION, Manifest, ManifestError, read_manifest, write_manifest

MEMBER = {"trial_id": "t0", "candidate_id": "t0/ema", "snapshot": "ema", "weight": 0.5, "oof_score": 0.9, "config": {"tta": "hflip"},
          "tta": "hflip", "input_size": [64, 96], "checkpoints": ["trials/t0/fold0/model.safetensors"], "ms_per_image": 3.0}
SEGMENTATION = {"format_version": 2, "study": "/s", "folds_hash": "abc", "num_classes": 2, "class_ids": [1, 2], "image_shape": [64, 96],
                "rle_order": "F", "data": {"format": "severstal", "mask_mode": "rle"}, "members": [MEMBER], "metric": "dice_pairs",
                "postprocessing": {"steps": ["threshold"], "per_class": [{"threshold": 0.5}, {"threshold": 0.4}]}, "oof_score": 0.91,
                "class_scores": [0.9, 0.92], "nested_score": None, "nested_fold_scores": None, "nested_split": None,
                "best_single": {"trial_id": "t0", "oof_score": 0.9}, "budget": {"expected_seconds": 10.0}, "history": [], "models": "folds"}
GATE = {"source": "study:g", "study": "/g", "seconds": 4.0, "segmented_share": 0.5, "multi_label": True, "num_classes": 2,
        "class_names": ["1", "2"], "calibration": {"temperature": 1.0, "thresholds": None}, "members": [{**MEMBER, "trial_id": "g", "candidate_id": "g"}]}
CLASSES = {"format_version": 2, "kind": CLASSIFICATION, "multi_label": False, "num_classes": 3, "class_names": ["a", "b", "c"],
           "calibration": {"temperature": 0.8, "thresholds": None, "class_weights": [1.0, 1.2, 0.9]}, "members": [MEMBER],
           "metric": "macro_f1", "higher_is_better": True, "knobs": {"temperature": "t", "thresholds": "w"}, "postprocessing": {"temperature": 0.8},
           "oof_score": 0.8, "class_scores": [0.7, 0.8, 0.9], "study": "/c", "folds_hash": "h", "image_shape": [32, 32]}


@pytest.mark.parametrize("raw", [SEGMENTATION, {**SEGMENTATION, "gate": GATE, "ensemble_id": "e1"}, CLASSES], ids=["masks", "gate", "labels"])
def test_a_manifest_reads_and_writes_back_its_fields(tmp_path: Path, raw: dict) -> None:
    path = tmp_path / "ensemble.json"
    path.write_text(json.dumps(raw))
    manifest = read_manifest(path)
    assert manifest.members[0].name == "t0/ema" and manifest.members[0].input_size == (64, 96)
    write_manifest(tmp_path / "again.json", manifest)
    again = json.loads((tmp_path / "again.json").read_text())
    for key, value in raw.items():  # every field the reader was given is written back as it was
        assert again[key] == value, key
    assert read_manifest(tmp_path / "again.json") == manifest


def test_kind_specific_views() -> None:
    labels = Manifest.from_dict(CLASSES, "m")
    assert labels.is_classification and labels.class_names == ["a", "b", "c"] and labels.calibration.class_weights == [1.0, 1.2, 0.9]
    assert labels.class_section().members is labels.members and labels.multi_label is False
    masks = Manifest.from_dict({**SEGMENTATION, "gate": GATE}, "m")
    assert not masks.is_classification and masks.gate is not None and masks.gate.segmented_share == 0.5 and masks.gate.members[0].trial_id == "g"
    with pytest.raises(ManifestError, match="has no class section"):
        masks.class_section()


def test_a_later_versions_fields_are_kept() -> None:
    raw = {**SEGMENTATION, "new_field": [1, 2], "members": [{**MEMBER, "new_member_field": "x"}]}
    out = Manifest.from_dict(raw, "m").to_dict()
    assert out["new_field"] == [1, 2] and out["members"][0]["new_member_field"] == "x"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"oof_score": None}, r"m: field 'oof_score' is missing"),
        ({"num_classes": "4"}, r"m: field 'num_classes' must be int, got '4'"),
        ({"kind": "boxes"}, r"m: field 'kind' must be segmentation or classification, got 'boxes'"),
        ({"members": [{**MEMBER, "weight": "heavy"}]}, r"m: member t0: field 'weight' must be float, got 'heavy'"),
        ({"members": [{**MEMBER, "input_size": [64]}]}, r"m: member t0: field 'input_size' must be \[height, width\]"),
        ({"members": [{k: v for k, v in MEMBER.items() if k != "trial_id"}]}, r"m: member: field 'trial_id' is missing"),
        ({"gate": {**GATE, "multi_label": "yes"}}, r"m: gate: field 'multi_label' must be bool"),
    ],
)
def test_a_bad_field_is_named(change: dict, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        Manifest.from_dict({**SEGMENTATION, **change}, "m")


def test_unreadable_files_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "ensemble.json"
    with pytest.raises(FileNotFoundError, match="no ensemble manifest"):
        read_manifest(path)
    path.write_text("{not json")
    with pytest.raises(ManifestError, match="not a JSON manifest"):
        read_manifest(path)
    path.write_text(json.dumps({**SEGMENTATION, "format_version": 9}))
    with pytest.raises(ManifestError, match=r"format_version must be one of \(1, 2\), got 9"):
        read_manifest(path)
