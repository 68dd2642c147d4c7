#!/usr/bin/env bash
# System B training throughput: diffexp (Rust, `cargo bench --bench dae`) against the PyTorch-CPU peer
# written like the paper's notebook (benches/peer/dae_torch.py), same workload (trimodal, d = 1000,
# r = 2), one thread each, run back to back on this machine. Prints both rates and their ratio.
#   bash benches/peer/dae_compare.sh [PYTHON]     # PYTHON: an interpreter with torch (default python3)
# DAE_CPU=N pins both runs to core N (default 0).
# torch from PyPI: `pip install torch` (the default index pulls the CUDA build, ~5 GB with its
# dependencies; it runs on CPU here).
set -euo pipefail
cd "$(dirname "$0")/../.."
py="${1:-python3}"
steps_rust="${DAE_BENCH_STEPS:-100000}"
steps_peer="${DAE_PEER_STEPS:-5000}"
rust_json="$(taskset -c "${DAE_CPU:-0}" cargo bench -q --bench dae -- --json --steps "$steps_rust" 2>/dev/null | tail -1)"
peer_json="$(OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 taskset -c "${DAE_CPU:-0}" "$py" benches/peer/dae_torch.py --steps "$steps_peer")"
echo "rust: $rust_json"
echo "peer: $peer_json"
python3 - "$rust_json" "$peer_json" <<'PY'
import json, sys
rs, pe = json.loads(sys.argv[1]), json.loads(sys.argv[2])
best = max(rs["steps_per_second_f64"], rs["steps_per_second_f32"])
print(f"diffexp {best:.0f} steps/s vs PyTorch peer {pe['steps_per_second']:.0f} steps/s: ratio {best / pe['steps_per_second']:.1f}x (per core)")
PY
