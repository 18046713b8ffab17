"""The record of what scored what: leaderboard scores against the ensembles that wrote the submissions.

    python -m ensembling.lb study=DIR submission=submission.csv public=0.912 [private=0.905]
    python -m ensembling.lb study=DIR plot=cv_vs_lb.png
    python -m ensembling.lb study=DIR

The submission's sidecar (``submission.csv.ensemble.json``, written by predict) names its ensemble; the
study's ``ensembles.json`` (written by export) holds that ensemble's OOF score and, where selection
computed it, the nested estimate. A record goes to MLflow (a run in the study's experiment, tagged with
the ensemble id) and then to ``<study>/leaderboard.json`` (written whole, atomically); recording the
same submission again replaces its row. ``plot=`` draws OOF (optimistic, and nested where known)
against the leaderboard for every recorded submission, beside the line where they would agree: to a new
file or a PNG plot of ours (its mark), another file only with ``overwrite=true``, never inside a study
(``core.targets``).
"""

from __future__ import annotations

import hashlib
import io
import sys
import time
from pathlib import Path
from typing import Any

from ensembling.cli import FLAG, TEXT, Command, Key, Typed, command

SCORE = Typed(float, 0)
LB = Command(
    "python -m ensembling.lb study=STUDY_DIR [submission=CSV public=SCORE [private=SCORE] [ensemble=ID]] [plot=cv_vs_lb.png [overwrite=false]]",
    "Record a leaderboard score against the ensemble that wrote the submission, and show the study's record (OOF against LB).",
    {
        "study": Key("the study folder"),
        "submission": Key("the submission CSV that was scored (its hash finds the ensemble that wrote it)", None, TEXT),
        "public": Key("its public leaderboard score", None, SCORE),
        "private": Key("its private leaderboard score", None, SCORE),
        "ensemble": Key("the ensemble id, where the submission's sidecar does not name it", None, TEXT),
        "plot": Key("also draw OOF against leaderboard scores into this PNG (a new file, or a plot this command drew)", None, TEXT),
        "overwrite": Key("with plot=: replace a PNG this command did not draw (never a study's or an input's file)", False, FLAG),
    },
)
if __name__ == "__main__":  # --help and a bad word are answered before the imports below
    LB.answer_early(sys.argv[1:])

from core.atomic import write_json, write_with
from core.contract import StudyFolder, read_json_file, sidecar
from core.png_mark import mark_png, marked_by
from core.targets import check_file_target, check_writable_folder

WRITER = "ensembling.lb"


def read_records(study: StudyFolder) -> list[dict[str, Any]]:
    if not study.leaderboard_json.is_file():
        return []
    records = read_json_file(study.leaderboard_json)
    if not isinstance(records, list):
        raise ValueError(f"{study.leaderboard_json}: expected a list of records, got {type(records).__name__}")
    return records


def make_record(study: StudyFolder, submission: Path, public: float | None, private: float | None, ensemble: str | None) -> dict[str, Any]:
    """The row for one scored submission, checked against the study's exported ensembles."""
    if not submission.is_file():
        raise FileNotFoundError(f"submission={submission}: file not found")
    if public is None and private is None:
        raise ValueError("give public=SCORE and/or private=SCORE (the leaderboard's scores of this submission)")
    digest = hashlib.sha256(submission.read_bytes()).hexdigest()
    side = sidecar(submission)
    written = read_json_file(side) if side.is_file() else {}
    ensemble = ensemble or written.get("ensemble_id")
    if not ensemble:
        raise ValueError(f"{side}: no sidecar naming the ensemble that wrote {submission.name}; pass ensemble=ID (see {study.ensembles_json})")
    if written and written.get("submission_sha256") not in (None, digest):
        print(f"note: {submission} changed since predict wrote it; recorded against ensemble {ensemble} anyway")
    exported = read_json_file(study.ensembles_json) if study.ensembles_json.is_file() else {}
    if ensemble not in exported:
        known = ", ".join(sorted(exported)) or "none yet"
        raise ValueError(f"ensemble={ensemble}: not an export of {study.root} (known: {known}); export it from this study first")
    info = exported[ensemble]
    return {
        "ensemble_id": ensemble,
        "submission": str(submission.resolve()),
        "submission_sha256": digest,
        "public": public,
        "private": private,
        "oof_score": info.get("oof_score"),
        "nested_score": info.get("nested_score"),
        "models": info.get("models"),
        "recorded": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def record(study: StudyFolder, row: dict[str, Any]) -> list[dict[str, Any]]:
    """MLflow first, then the study's file whole: a failure leaves the study as it was."""
    _log_mlflow(study, row)
    rows = [r for r in read_records(study) if r.get("submission_sha256") != row["submission_sha256"]]
    rows.append(row)
    write_json(study.leaderboard_json, rows)
    return rows


def _log_mlflow(study: StudyFolder, row: dict[str, Any]) -> None:
    import mlflow

    from core.tracking import numeric, resolve_uri, use_experiment

    tracking = study.read_config().get("mlflow") or {}
    use_experiment(resolve_uri(tracking.get("uri")), tracking.get("experiment") or study.root.name)
    with mlflow.start_run(run_name=f"lb {row['ensemble_id']}"):
        mlflow.set_tags({"study": str(study.root), "kind": "leaderboard", "ensemble_id": row["ensemble_id"], "submission_sha256": row["submission_sha256"]})
        mlflow.log_metrics(numeric({k: row[k] for k in ("public", "private", "oof_score", "nested_score")}))


def plot(study: StudyFolder, out: Path) -> int:
    """OOF (optimistic; nested where known) against leaderboard scores; returns the points drawn."""
    rows = [r for r in read_records(study) if r.get("public") is not None or r.get("private") is not None]
    if not rows:
        raise ValueError(f"{study.leaderboard_json}: no recorded leaderboard score yet; run `python -m ensembling.lb study=... submission=... public=...` first")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 5))
    points = 0
    for board, colour in (("public", "tab:blue"), ("private", "tab:red")):
        for estimate, marker in (("oof_score", "o"), ("nested_score", "^")):
            pairs = [(r[estimate], r[board], r["ensemble_id"]) for r in rows if r.get(estimate) is not None and r.get(board) is not None]
            if not pairs:
                continue
            label = f"{'OOF' if estimate == 'oof_score' else 'nested'} vs {board} LB"
            axes.scatter([p[0] for p in pairs], [p[1] for p in pairs], c=colour, marker=marker, label=label, alpha=0.6 if marker == "^" else 1)
            for x, y, name in pairs:
                axes.annotate(name[:6], (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
            points += len(pairs)
    low, high = (min(axes.get_xlim()[0], axes.get_ylim()[0]), max(axes.get_xlim()[1], axes.get_ylim()[1]))
    axes.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1, label="CV = LB")
    axes.set(xlabel="cross-validation estimate", ylabel="leaderboard score", title=f"CV vs LB: {study.root.name}")
    axes.legend(fontsize=8)
    figure.tight_layout()
    suffix = out.suffix.lstrip(".").lower() or "png"
    if suffix == "png":  # marked, so a later plot= may replace it
        drawn = io.BytesIO()
        figure.savefig(drawn, format="png", dpi=120)
        write_with(out, lambda tmp: tmp.write_bytes(mark_png(drawn.getvalue(), WRITER)))
    else:
        write_with(out, lambda tmp: figure.savefig(tmp, format=suffix, dpi=120))
    plt.close(figure)
    return points


def table(rows: list[dict[str, Any]]) -> str:
    def cell(value: Any) -> str:
        return "-" if value is None else f"{value:.4f}"

    lines = [f"{'ensemble':<14}{'models':<8}{'OOF':>8}{'nested':>8}{'public':>8}{'private':>8}  submission"]
    lines += [
        f"{r['ensemble_id']:<14}{r.get('models') or '-':<8}{cell(r.get('oof_score')):>8}{cell(r.get('nested_score')):>8}"
        f"{cell(r.get('public')):>8}{cell(r.get('private')):>8}  {Path(r['submission']).name}"
        for r in rows
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    usage = LB.usage

    def body() -> None:
        args = LB.parse(argv)
        study = StudyFolder(Path(args["study"]).expanduser().resolve())
        if not study.study_yaml.is_file():
            raise FileNotFoundError(f"study={study.root}: not a study folder (no {study.study_yaml.name})")
        if "overwrite" in args and "plot" not in args:
            raise ValueError(f"overwrite= goes with plot=PNG (it lets the plot replace a file we did not write); usage: {usage}")
        if "plot" in args:
            mark = f"no {WRITER} mark in it (only a .png plot carries one)"
            inputs = {"submission": args.get("submission") or None}
            args["plot"] = check_file_target(args["plot"], "plot", inputs, lambda p: marked_by(p) == WRITER, mark, args.get("overwrite", False), "cv_vs_lb.png")
        if args.get("submission"):
            check_writable_folder(study.root, "study", study.leaderboard_json.name)
            row = make_record(study, Path(args["submission"]).expanduser(), args.get("public"), args.get("private"), args.get("ensemble") or None)
            rows = record(study, row)
            print(f"Recorded ensemble {row['ensemble_id']}: public {row['public']}, private {row['private']}, OOF {row['oof_score']}")
        elif any(k in args for k in ("public", "private", "ensemble")):
            raise ValueError(f"public=/private=/ensemble= need submission=CSV; usage: {usage}")
        rows = read_records(study)
        if "plot" in args:
            points = plot(study, args["plot"])
            print(f"Wrote {args['plot']}: {points} point(s)")
        print(table(rows) if rows else f"{study.leaderboard_json}: no recorded leaderboard score yet")

    return command(body)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
