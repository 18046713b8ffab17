"""What each post-processing step adds on a selected ensemble's OOF, over threshold and minimum area alone.

    python bench/studies/bench_steps.py study=STUDY_DIR

Reads ``<study>/ensemble.json`` (its best greedy prefix), blends those members' OOF and tunes subsets of
the registered steps on it; prints the tuned OOF score of each subset. OOF scores are optimistic (tuned
where they are scored); compare them to each other.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.data.study import open_study
from core.postprocess import Tuner, tune
from ensembling.cli import command, parse_args
from ensembling.runtime.manifest import read_manifest
from ensembling.scoring.blend import BlendScorer
from ensembling.select import split_candidates, study_metric

USAGE = "python bench/studies/bench_steps.py study=STUDY_DIR"


def main(argv: list[str]) -> int:
    return command(lambda: run(parse_args(argv, ["study"], [], USAGE)["study"]))


def run(study_dir: str) -> None:
    study = open_study(study_dir)
    candidates, _ = split_candidates(study)
    ids = [c.candidate_id for c in candidates]
    manifest = read_manifest(study.folder.ensemble_json)
    best = max(manifest.history, key=lambda h: h["score"])
    counts = {ids.index(k): c for k, c in best["members"].items()}
    metric = study_metric(study)
    scorer = BlendScorer([c.oof() for c in candidates], study.truth(), Tuner(metric), compact=False)
    chunks = list(scorer.blend_chunks(counts))
    print(f"{study_dir}: members {best['members']}, metric {metric}")
    for steps in (["threshold", "min_area"], ["threshold", "min_area", "min_component"], ["threshold", "min_area", "gate"], None):
        print(f"  {' + '.join(steps) if steps else 'every step':<40} {tune(chunks, metric, steps=steps).score:.4f}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
