#!/usr/bin/env bash
# A Severstal-format run with the classifier gate against the same run without it, both scored on the
# test images' truth: one segmentation search, one presence search on the same images and folds
# (data.task=presence), then select/export/predict twice (without and with gate=) from the same trials.
#
#   bash bench/studies/flow_gate.sh WORK_DIR [DATA_ROOT] [extra key=value for both searches ...]
#
# DATA_ROOT as for bench/studies/flow.sh (train.csv, train_images/, test_images/, sample_submission.csv,
# test_truth.csv); without it the built-in synthetic set. Prints each step's wall time, each
# submission's mean Dice beside all-empty, and how many test images the gate sent to segmentation.
set -euo pipefail
work=$(realpath -m "$1"); shift
data=""
if [ $# -gt 0 ] && [ -d "$1" ]; then data=$(realpath "$1"); shift; fi
mkdir -p "$work" && cd "$work"
step() { local name=$1; shift; local t0=$(date +%s.%N); "$@"; printf '%-16s %6.1f s\n' "$name" "$(echo "$(date +%s.%N) - $t0" | bc)" >> times.txt; }
: > times.txt
source=(); [ -n "$data" ] && source=(data=severstal data.root="$data")
# the presence study must share the masks study's data, folds and seed: both spaces are told the same
step search-masks python -m search.run space=quick study=masks storage=studies folds=2 seed=0 "${source[@]}" "$@"
step search-presence python -m search.run space=classes_quick study=presence storage=studies folds=2 seed=0 data.task=presence "${source[@]}" "$@"
[ -z "$data" ] && data=$(ls -d "$work"/studies/_data/synthetic-*)
step select-presence python -m ensembling.select study=studies/presence
for mode in plain gate; do
  extra=(); [ "$mode" = gate ] && extra=(gate=studies/presence)
  step "select-$mode" python -m ensembling.select study=studies/masks "${extra[@]}"
  step "export-$mode" python -m ensembling.export study=studies/masks out="export-$mode"
  step "predict-$mode" python -m ensembling.predict model="export-$mode" images="$data/test_images" sample="$data/sample_submission.csv" out="submission-$mode.csv" | tee "predict-$mode.txt"
  echo "$mode: $(python -m ensembling.score submission="submission-$mode.csv" truth="$data/test_truth.csv" images="$data/test_images")" | tee -a score.txt
done
cat times.txt
cat score.txt
