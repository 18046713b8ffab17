"""The OOF score and both nested estimates of a masks study, against the hidden score they estimate.

    python bench/studies/nested_vs_hidden.py study=DIR data=DATA_ROOT work=WORK_DIR

A copy of the study is selected twice (``ensembling.select nested.split=folds``, then ``images``: the
selection itself is the same, only the nested estimate differs), exported, and scored on the hidden test
images by ``bench/studies/fold_models_on_submission.py``: once per fold with each member cut to that fold's model
(the mean is the hidden score of what OOF and the nested estimates describe: one model per image), and
as exported (fold models averaged). Prints one line of numbers and which estimate is the closer.
``data`` as for bench/studies/flow.sh; ``work`` is created, or replaced only when an earlier run wrote it.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from fold_models_on_submission import fresh_work, hidden_scores, run_module  # beside this script

from ensembling.cli import command, parse_args
from ensembling.runtime.manifest import read_manifest

MARKER = ".nested_vs_hidden"


USAGE = "python bench/studies/nested_vs_hidden.py study=DIR data=DATA_ROOT work=WORK_DIR"


def main(argv: list[str]) -> int:
    return command(lambda: run(parse_args(argv, ["study", "data", "work"], [], USAGE)))


def run(args: dict[str, str]) -> None:
    study, data, work = (Path(args[k]).resolve() for k in ("study", "data", "work"))
    fresh_work(work, MARKER)
    copy = work / "study"
    shutil.copytree(study, copy, ignore=shutil.ignore_patterns("ray-*"))
    nested = {}
    for split in ("folds", "images"):
        run_module("ensembling.select", f"study={copy}", f"nested.split={split}")
        manifest = read_manifest(copy / "ensemble.json")
        nested[split] = manifest.nested_score
    run_module("ensembling.export", f"study={copy}", f"out={work / 'export'}")
    scores, full = hidden_scores(work / "export", data, work / "folds")
    one = sum(scores) / len(scores)
    oof = manifest.oof_score
    off = {"OOF": oof - one, "nested (folds)": nested["folds"] - one, "nested (images)": nested["images"] - one}
    closest = min(off, key=lambda k: abs(off[k]))
    print(f"{study}: members {len(manifest.members)}, OOF {oof:.4f}, nested folds {nested['folds']:.4f}, nested images {nested['images']:.4f}; "
          f"hidden: one fold model {one:.4f}, export {full:.4f}; off by " + ", ".join(f"{k} {v:+.4f}" for k, v in off.items()) + f"; closest: {closest}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
