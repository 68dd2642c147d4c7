#!/usr/bin/env bash
# diffexp vs a plain numpy loop of the same single-direction pSGD step, one thread each.
# Usage: bash benches/peer/compare.sh            (d = 1e3 and 1e5)
# Needs python3 with numpy (pip install numpy). Prints µs/step of each and the speed ratio.
# PEER_CPU=N pins both runs to core N (default 0).
set -euo pipefail
cd "$(dirname "$0")/../.."
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 RAYON_NUM_THREADS=1
cargo build --release --quiet
for d in 1000 100000; do
  if [ "$d" -le 1000 ]; then steps=40000; else steps=400; fi
  py=$(taskset -c "${PEER_CPU:-0}" python3 benches/peer/numpy_psgd.py --d "$d" --steps "$steps")
  rs=$(taskset -c "${PEER_CPU:-0}" ./target/release/diffexp bench --json --secs 2 --dims "$d")
  python3 - "$py" "$rs" <<'PY'
import json, sys
py = json.loads(sys.argv[1]); rs = json.loads(sys.argv[2])
d = py["d"]; us_np = py["us_per_step"]
us_rs = rs["steps"][0]["ns_per_step"] / 1e3
print(f"d = {d:>7}: numpy {us_np:9.2f} µs/step, diffexp {us_rs:8.3f} µs/step, diffexp is {us_np / us_rs:6.1f}× faster")
PY
done
