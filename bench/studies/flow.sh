#!/usr/bin/env bash
# The whole chain on a Severstal-format folder, timed step by step, the submission scored at the end.
#
#   bash bench/studies/flow.sh WORK_DIR [DATA_ROOT] [extra search key=value ...]
#
# DATA_ROOT needs train.csv, train_images/, test_images/, sample_submission.csv and test_truth.csv
# (the truth of the test images, in train.csv's layout). Without DATA_ROOT the built-in synthetic set
# is used. Prints the wall time of each step and the submission's mean Dice beside all-empty.
set -euo pipefail
work=$(realpath -m "$1"); shift
data=""
if [ $# -gt 0 ] && [ -d "$1" ]; then data=$(realpath "$1"); shift; fi
mkdir -p "$work" && cd "$work"
step() { local name=$1; shift; local t0=$(date +%s.%N); "$@"; printf '%-8s %6.1f s\n' "$name" "$(echo "$(date +%s.%N) - $t0" | bc)" >> times.txt; }
: > times.txt
if [ -n "$data" ]; then
  step search python -m search.run space=quick data=severstal data.root="$data" storage=studies "$@"
else
  step search python -m search.run space=quick storage=studies "$@"
  data=$(ls -d "$work"/studies/_data/synthetic-*)
fi
step select python -m ensembling.select study=studies/quick
step export python -m ensembling.export study=studies/quick out=export
step predict python -m ensembling.predict model=export images="$data/test_images" sample="$data/sample_submission.csv" out=submission.csv
python -m ensembling.score submission=submission.csv truth="$data/test_truth.csv" images="$data/test_images" | tee score.txt
cat times.txt
