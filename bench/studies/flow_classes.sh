#!/usr/bin/env bash
# A classification data set end to end against a plain timm script given the same wall time.
#
#   bash bench/studies/flow_classes.sh WORK_DIR SPLIT_DIR [extra search key=value ...]
#
# SPLIT_DIR as bench/data/neu_det_split.py writes it: train/ (class = file-name prefix), test/images/ and
# test_labels.csv (image,label; read only to score). Ours: search, select, export, predict in the
# sample's label layout; then bench/baselines/plain_classes.py with our wall time as its budget. Prints both
# test accuracies and wall times. Run it on a quiet machine.
set -euo pipefail
work=$(realpath -m "$1"); split=$(realpath "$2"); shift 2
here=$(cd "$(dirname "$0")" && pwd)
# replace only an earlier run of this script (its marker), never a folder of the user's
if [ -e "$work/ours" ] && [ ! -f "$work/ours/.flow_classes" ]; then
  echo "error: $work/ours exists and was not written by bench/studies/flow_classes.sh; give another WORK_DIR" >&2; exit 2
fi
rm -rf "$work/ours" && mkdir -p "$work/ours" && : > "$work/ours/.flow_classes"
python - "$split/test_labels.csv" "$work/sample.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
with open(sys.argv[2], "w", newline="") as f:
    w = csv.writer(f); w.writerow(["image", "label"]); w.writerows([[r["image"], ""] for r in rows])
PY
t0=$(date +%s.%N)
(
  cd "$work/ours"
  python -m search.run space=classes_quick data=classes data.root="$split/train" study=cls storage=studies "$@"
  python -m ensembling.select study=studies/cls
  python -m ensembling.export study=studies/cls out=export
  python -m ensembling.predict model=export images="$split/test/images" sample="$work/sample.csv" out=submission.csv
) > "$work/ours.log" 2>&1
ours_s=$(echo "$(date +%s.%N) - $t0" | bc)
score() {
  python - "$split/test_labels.csv" "$1" <<'PY'
import csv, sys
truth = {r["image"]: r["label"] for r in csv.DictReader(open(sys.argv[1]))}
pred = {r["image"]: r["label"] for r in csv.DictReader(open(sys.argv[2]))}
assert set(pred) == set(truth), "the submission does not list every test image once"
print(f"accuracy {sum(pred[k] == v for k, v in truth.items()) / len(truth):.4f} over {len(truth)} images")
PY
}
ours_score=$(score "$work/ours/submission.csv")
python "$here/../baselines/plain_classes.py" train="$split/train" test="$split/test/images" labels="$split/test_labels.csv" \
  seconds="$(printf '%.0f' "$ours_s")" size=96 out="$work/plain.json" > "$work/plain.log" 2>&1
plain=$(python -c "import json,sys; d=json.load(open(sys.argv[1])); print(f\"accuracy {d['test_accuracy']:.4f}, {d['seconds']:.0f} s\")" "$work/plain.json")
{
  printf 'machine: %s, %s cores, %s\n' "$(uname -n)" "$(nproc)" "$(date -u +%Y-%m-%dT%H:%MZ)"
  printf '%-40s %6.0f s   %s\n' "ours: search+select+export+predict" "$ours_s" "$ours_score"
  printf '%-40s %s\n' "plain timm script, the same budget" "$plain"
} | tee "$work/versus.txt"
