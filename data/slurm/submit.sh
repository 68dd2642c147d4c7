#!/usr/bin/env bash
# Runs a diffexp study as a SLURM job array of SHARDS tasks, then merges and reports it.
#   data/slurm/submit.sh CONFIG OUT SHARDS [extra sbatch options...]
# Environment: DIFFEXP = path of the diffexp binary (default: diffexp on PATH).
# Prints the array job id and the merge job id. Results: OUT/merged (manifest.json, d*/ arrays,
# summary.json) and OUT/merged/report.
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 CONFIG OUT SHARDS [sbatch options...]" >&2
  exit 2
fi
CONFIG=$(realpath "$1"); OUT=$(realpath -m "$2"); SHARDS=$3; shift 3
here=$(dirname "$(realpath "$0")")
DIFFEXP=${DIFFEXP:-$(command -v diffexp || true)}
[ -n "$DIFFEXP" ] || { echo "set DIFFEXP to the diffexp binary" >&2; exit 2; }
DIFFEXP=$(realpath "$DIFFEXP")
mkdir -p "$OUT"
export CONFIG OUT SHARDS DIFFEXP
array=$(sbatch --parsable --array="0-$((SHARDS - 1))" --chdir="$OUT" --export=ALL "$@" "$here/study-array.sbatch")
merge=$(sbatch --parsable --dependency="afterok:${array%%;*}" --chdir="$OUT" --export=ALL "$@" "$here/merge.sbatch")
echo "array job $array, merge job $merge; results in $OUT/merged"
