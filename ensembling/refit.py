"""Refit the chosen members on all the data: ``python -m ensembling.refit study=DIR [ray.address=HOST:PORT]``.

Each fold model of a K-fold member saw (K-1)/K of the training images. Refit trains each member's
configuration once more, on every training image, for its epochs (same seed rule, loss, augmentation
and scale; a classifier with its label smoothing and mixing), and writes
``trials/<id>/refit/model.safetensors`` then ``refit/metrics.json`` last. The post-processing stays the
one tuned on OOF (a refit model has no OOF of its own). Then ``python -m ensembling.export study=DIR
out=DIR models=refit`` exports one model per member instead of K: K times cheaper in the kernel. With
``ray.address=`` the members train as Ray tasks on that cluster (``ray.address=local``: a Ray of our own
on a loopback address); without it, one after another here. A member already refit with the same
config is kept.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from ensembling.cli import FLAG, TEXT, Command, Key, Typed, command

REFIT = Command(
    "python -m ensembling.refit study=STUDY_DIR [ray.address=HOST:PORT|local] [threads=0] [epochs=0] [force=false]",
    "Train each member of the selected ensemble once more on all the data, for its own epochs; export with models=refit.",
    {
        "study": Key("the study folder whose ensemble.json ensembling.select wrote"),
        "ray.address": Key("train the members as Ray tasks on this cluster (local: a Ray of its own); null: one by one here", None, TEXT),
        "threads": Key("torch CPU threads (0: torch's default)", 0, Typed(int, 0)),
        "epochs": Key("epochs each member trains on all the data (0: its own: train.epochs, or what its clock trained under train.time_limit)", 0, Typed(int, 0)),
        "force": Key("train again the members refit before", False, FLAG),
    },
)
if __name__ == "__main__":  # --help and a bad word are answered before the imports below (torch: seconds)
    REFIT.answer_early(sys.argv[1:])

from tqdm import tqdm

from core.atomic import atomic_path, write_json
from core.contract import StudyFolder, read_json_file
from core.targets import check_writable_folder
from ensembling.runtime.manifest import read_manifest


def refit_member(config: dict[str, Any], study_dir: str, trial_id: str, threads: int = 0, epochs: int = 0) -> dict[str, Any]:
    """Train one config on every training image of the study (for ``epochs``, 0: its own); returns what
    refit/metrics.json holds (``config`` the member's as selected, ``epochs`` those trained)."""
    import numpy as np
    import torch

    from core.data.study import open_study
    from core.models import save_weights
    from core.preprocess import MULTIPLE, scaled_size
    from trainables.epochs import train_all
    from trainables.fit import pick_device
    from trainables.loop import autocast_dtype
    from trainables.validate import parse_config

    study = open_study(study_dir)
    trial = study.folder.trial(trial_id)
    epochs = epochs or clocked_epochs(config, trial.metrics_json)
    cfg = parse_config({**config, "train.epochs": epochs} if epochs else config)
    if threads or cfg.train.threads:
        torch.set_num_threads(threads or cfg.train.threads)
    device = pick_device()
    size = scaled_size(study.data.shape, cfg.train.scale, MULTIPLE)
    dtype = autocast_dtype(cfg.train.precision, device)
    began = time.perf_counter()
    from trainables.tasks import task_for

    model, losses = train_all(task_for(cfg.model, study), cfg, size, device, dtype)
    with atomic_path(trial.refit_weights) as tmp:
        save_weights(model, tmp)
    metrics = {
        "trial_id": trial_id,
        "epochs": cfg.train.epochs,
        "images": study.training_images,
        "train_loss": float(np.mean(losses[-1:])),
        "seconds": time.perf_counter() - began,
        "config": config,
        "folds_hash": study.folds_hash,
    }
    write_json(trial.refit_metrics, metrics)  # last: the refit is complete from here on
    return metrics


def clocked_epochs(config: dict[str, Any], metrics: Path) -> int:
    """The epochs a trial under ``train.time_limit`` trained (its clock decided them, not ``train.epochs``), read
    from its metrics.json; 0 for a trial without a limit, or with no record of them."""
    if not float(config.get("train.time_limit") or 0) > 0 or not metrics.is_file():
        return 0
    return int(read_json_file(metrics).get("epoch") or 0)


def pending_members(study_dir: Path, force: bool = False, epochs: int = 0) -> list[tuple[str, dict[str, Any]]]:
    """(trial id, config) of each selected member not yet refit with its current config (and ``epochs``, if given)."""
    study = StudyFolder(study_dir)
    manifest = read_manifest(study.ensemble_json)
    todo: list[tuple[str, dict[str, Any]]] = []
    for member in manifest.members:
        if any(member.trial_id == trial_id for trial_id, _ in todo):
            continue  # two candidates of one trial (snapshots) share its config: one refit
        trial = study.trial(member.trial_id)
        done = trial.refit_metrics.is_file() and trial.refit_weights.is_file()
        recorded = read_json_file(trial.refit_metrics) if done else {}
        same_epochs = not epochs or recorded.get("epochs") == epochs
        if done and not force and recorded.get("config") == member.config and same_epochs:
            print(f"  {member.trial_id}: already refit, kept (force=true to train again)")
            continue
        todo.append((member.trial_id, member.config))
    return todo


def refit(study_dir: Path, address: str | None = None, threads: int = 0, force: bool = False, epochs: int = 0) -> list[dict[str, Any]]:
    study_dir = study_dir.expanduser().resolve()
    todo = pending_members(study_dir, force, epochs)
    for trial_id, _ in todo:  # where each refit lands, tried before any training
        check_writable_folder(StudyFolder(study_dir).trial(trial_id).root, "study", f"trials/{trial_id}/refit/", study_dir)
    if not todo:
        return []
    if address:
        return _refit_on_ray(study_dir, todo, address, threads, epochs)
    results = []
    for trial_id, config in tqdm(todo, desc="refitting", unit="member"):
        results.append(refit_member(config, str(study_dir), trial_id, threads, epochs))
    return results


def _refit_on_ray(study_dir: Path, todo: list[tuple[str, dict[str, Any]]], address: str, threads: int, epochs: int = 0) -> list[dict[str, Any]]:
    """The thin Ray edge: one task per member on the cluster, each with the CPUs it will use."""
    import ray

    from search.session import ray_started  # local: a Ray of our own with every port on loopback, stopped after

    with ray_started(None if address == "local" else address, None):
        task = ray.remote(num_cpus=max(threads, 1), max_retries=1)(refit_member)
        refs = [task.remote(config, str(study_dir), trial_id, threads, epochs) for trial_id, config in todo]
        results = []
        with tqdm(total=len(refs), desc="refitting on Ray", unit="member") as bar:
            remaining = list(refs)
            while remaining:
                done, remaining = ray.wait(remaining, num_returns=1)
                results.append(ray.get(done[0]))
                bar.update(1)
        return results


def main(argv: list[str]) -> int:
    def body() -> None:
        args = REFIT.parse(argv)
        study_dir = Path(args["study"])
        results = refit(study_dir, args.get("ray.address") or None, args.get("threads", 0), args.get("force", False), args.get("epochs", 0))
        for result in results:
            print(f"  {result['trial_id']}: {result['epochs']} epoch(s) on {result['images']} images in {result['seconds']:.1f} s")
        print(f"Next: python -m ensembling.export study={study_dir} out=DIR models=refit")

    return command(body)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
