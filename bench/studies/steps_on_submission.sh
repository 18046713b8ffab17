#!/usr/bin/env bash
# What each post-processing step adds on the submission, scored against hidden truth: a copy of a masks
# study selected with threshold+min_area only, then + min_component, then every step; each exported,
# predicted and scored (`ensembling.score`). The study itself is left as it was.
#
#   bash bench/studies/steps_on_submission.sh WORK_DIR STUDY_DIR DATA_ROOT [extra select key=value ...]
#
# DATA_ROOT as for bench/studies/flow.sh (test_images/, sample_submission.csv, test_truth.csv).
set -euo pipefail
work=$(realpath -m "$1"); study=$(realpath "$2"); data=$(realpath "$3"); shift 3
extra=("$@")
# replace only an earlier run of this script (its marker), never a folder of the user's
if [ -e "$work" ] && [ ! -f "$work/.steps_on_submission" ]; then
  echo "error: $work exists and was not written by bench/studies/steps_on_submission.sh; give another WORK_DIR" >&2; exit 2
fi
rm -rf "$work" && mkdir -p "$work" && : > "$work/.steps_on_submission"
cp -r "$study" "$work/study" && rm -rf "$work"/study/ray-*
for mode in "ta:threshold,min_area" "tac:threshold,min_area,min_component" "all:"; do
  name=${mode%%:*}; list=${mode#*:}
  steps=(); [ -n "$list" ] && steps=(steps="$list")
  python -m ensembling.select study="$work/study" "${steps[@]}" "${extra[@]}" > "$work/select-$name.txt" 2>&1
  grep -E "^(Ensemble|Nested|Post-processing|  class)" "$work/select-$name.txt"
  python -m ensembling.export study="$work/study" out="$work/export-$name" > /dev/null
  python -m ensembling.predict model="$work/export-$name" images="$data/test_images" sample="$data/sample_submission.csv" out="$work/sub-$name.csv" 2>/dev/null | tail -1
  echo "$name: $(python -m ensembling.score submission="$work/sub-$name.csv" truth="$data/test_truth.csv" images="$data/test_images")" | tee -a "$work/score.txt"
done
