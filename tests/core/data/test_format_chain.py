"""The chain (prepare, trial, select, export, predict) on a folder-format set of real NEU-Seg images of
mixed sizes, without Ray: index PNG masks come back at each test image's own size."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from shared_data import shared

import core.data  # noqa: F401
from core.data.images import read_mask
from ensembling import export, predict, select
from search.config import load_plan
from search.run import prepare
from trainables import fit


@pytest.mark.slow
def test_folder_chain_on_real_index_masks_of_mixed_sizes(tmp_path):
    real = shared("neu_seg")
    root, test = tmp_path / "data", tmp_path / "test"
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
    test.mkdir()
    paths = sorted((real / "images").glob("*.jpg"))[::60][:20]
    for i, path in enumerate(paths[:16]):
        mask = Image.open(real / "masks" / f"{path.stem}.png")
        if i % 4 == 3:  # a quarter at another size: resized for training, predicted back at their own
            Image.open(path).resize((240, 160)).save(root / "images" / f"{path.stem}.png")
            mask.resize((240, 160), Image.NEAREST).save(root / "masks" / f"{path.stem}.png")
        else:
            (root / "images" / path.name).symlink_to(path)
            (root / "masks" / f"{path.stem}.png").symlink_to(real / "masks" / f"{path.stem}.png")
    for path in paths[16:]:
        (test / path.name).symlink_to(path)
    Image.open(paths[16]).resize((150, 100)).save(test / "small.png")
    argv = ["data=folder", f"data.root={root}", f"storage={tmp_path / 'studies'}", "study=neu", "folds=2"]
    study = prepare(load_plan(argv))
    assert study.name == "neu"
    trial = ["model.encoder_depth=3", "train.epochs=1", "train.scale=0.32", "train.threads=1", "train.batch_size=4"]
    assert fit.main([f"study={study}", *trial]) == 0
    assert (study / "cache").is_dir() and list((study / "cache").glob("*-images.npy"))
    assert select.main([f"study={study}", "budget.seconds=3600", "budget.images=10"]) == 0
    assert export.main([f"study={study}", f"out={tmp_path / 'export'}"]) == 0
    manifest = json.loads((tmp_path / "export" / "ensemble.json").read_text())
    assert manifest["data"] == {"format": "folder", "mask_mode": "index"} and manifest["num_classes"] == 3
    out = tmp_path / "pred"
    assert predict.main([f"model={tmp_path / 'export'}", f"images={test}", "sample=none", f"out={out}"]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(f"{p.stem}.png" for p in test.iterdir())
    small = read_mask(out / "small.png")
    assert small.shape == (100, 150) and small.max() <= 3
    assert all(read_mask(out / f"{p.stem}.png").shape == (200, 200) for p in paths[16:])
    assert np.isin(np.unique(np.concatenate([read_mask(p).ravel() for p in out.iterdir()])), [0, 1, 2, 3]).all()


@pytest.mark.slow
def test_carvana_chain_writes_the_samples_submission(tmp_path):
    import pandas as pd
    from test_format_contract import _carvana

    from core.data.rle import rle_decode

    root, _ = _carvana(tmp_path / "data")
    argv = ["data=carvana", f"data.root={root}", f"storage={tmp_path / 'studies'}", "study=car", "folds=2"]
    study = prepare(load_plan(argv))
    trial = ["model.encoder_depth=3", "train.epochs=1", "train.scale=0.1", "train.threads=1", "train.batch_size=4"]
    assert fit.main([f"study={study}", *trial]) == 0
    assert select.main([f"study={study}", "budget.seconds=3600", "budget.images=10"]) == 0
    assert export.main([f"study={study}", f"out={tmp_path / 'export'}"]) == 0
    ids = sorted(p.name for p in (root / "train").iterdir())[:4][::-1]
    pd.DataFrame({"img": ids, "rle_mask": ""}).to_csv(tmp_path / "sample.csv", index=False)
    out = tmp_path / "submission.csv"
    args = [f"model={tmp_path / 'export'}", f"images={root / 'train'}", f"sample={tmp_path / 'sample.csv'}", f"out={out}"]
    assert predict.main(args) == 0
    frame = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert frame.columns.tolist() == ["img", "rle_mask"] and frame["img"].tolist() == ids
    for rle in frame["rle_mask"]:
        assert rle_decode(rle, (480, 720), "C").shape == (480, 720)  # row-major, at the image's own size
