#!/usr/bin/env bash
# The wave's measure: the plain script and our default chain, back to back on one machine, each timed
# from start to written submission and scored on the hidden test truth.
#
#   bash bench/studies/versus_plain.sh WORK_DIR DATA_ROOT [extra search key=value ...]
#
# DATA_ROOT is a Severstal-format folder with test_truth.csv (bench/data/neu_as_severstal.py makes one from
# NEU-Seg). Run it on a quiet machine: the two runs are compared by wall time.
set -euo pipefail
work=$(realpath -m "$1"); data=$(realpath "$2"); shift 2
here=$(cd "$(dirname "$0")" && pwd)
# replace only an earlier run of bench/studies/flow.sh (its times.txt), never a folder of the user's
if [ -e "$work/ours" ] && [ ! -f "$work/ours/times.txt" ]; then
  echo "error: $work/ours exists and is not an earlier run of bench/studies/flow.sh; give another WORK_DIR" >&2; exit 2
fi
mkdir -p "$work"
t0=$(date +%s.%N)
python "$here/../baselines/plain_script.py" data="$data" out="$work/plain.csv" > "$work/plain.log" 2>&1
plain_s=$(echo "$(date +%s.%N) - $t0" | bc)
plain_score=$(python -m ensembling.score submission="$work/plain.csv" truth="$data/test_truth.csv" images="$data/test_images")
rm -rf "$work/ours"
t0=$(date +%s.%N)
bash "$here/flow.sh" "$work/ours" "$data" "$@" > "$work/ours.log" 2>&1
ours_s=$(echo "$(date +%s.%N) - $t0" | bc)
{
  printf 'machine: %s, %s cores, %s\n' "$(uname -n)" "$(nproc)" "$(date -u +%Y-%m-%dT%H:%MZ)"
  printf '%-28s %8.0f s   %s\n' "plain script" "$plain_s" "$plain_score"
  printf '%-28s %8.0f s   %s\n' "search+select+export+predict" "$ours_s" "$(cat "$work/ours/score.txt")"
  sed 's/^/    /' "$work/ours/times.txt"
} | tee "$work/versus.txt"
