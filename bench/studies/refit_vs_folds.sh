#!/usr/bin/env bash
# Fold models against refit models of the same selection, scored on held-out truth with their inference cost.
#
#   bash bench/studies/refit_vs_folds.sh STUDY_DIR DATA_ROOT WORK_DIR [threads=1]
#
# STUDY_DIR: a searched study (e.g. from bench/studies/flow.sh or search.run on `python bench/data/neu_as_severstal.py`);
# DATA_ROOT: test_images/, sample_submission.csv and test_truth.csv. Selects, refits the members on every
# training image, exports both ways, predicts each with bench=true and scores each: one line per export.
set -euo pipefail
study=$(realpath "$1"); data=$(realpath "$2"); work=$(realpath -m "$3"); threads=${4:-1}
mkdir -p "$work" && cd "$work"
python -m ensembling.select study="$study" budget.images="$(ls "$data/test_images" | wc -l)" | tee select.txt
t0=$(date +%s.%N)
python -m ensembling.refit study="$study" threads="$threads" | tee refit.txt
echo "refit wall $(echo "$(date +%s.%N) - $t0" | bc) s" >> refit.txt
for models in folds refit; do
  python -m ensembling.export study="$study" out="$work/export-$models" models=$models
  python "$work/export-$models/predict.py" images="$data/test_images" sample="$data/sample_submission.csv" \
      out="$work/sub-$models.csv" bench=true workers=2 2>/dev/null | tee "predict-$models.txt"
  python -m ensembling.score submission="$work/sub-$models.csv" truth="$data/test_truth.csv" images="$data/test_images" | tee "score-$models.txt"
done
printf '\n%-6s %-12s %-52s %s\n' models score "predict (bench)" "OOF of the selection"
for models in folds refit; do
  printf '%-6s %-12s %-52s %s\n' "$models" "$(awk '{print $3}' score-$models.txt)" "$(grep -m1 'ms per image' predict-$models.txt | cut -c8-60)" "$(grep -m1 '^Ensemble' select.txt | awk '{print $NF}')"
done
