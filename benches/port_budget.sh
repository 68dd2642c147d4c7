#!/usr/bin/env bash
# Where the single-direction step's loops stand against the CPU's vector ports.
# Usage: bash benches/port_budget.sh [d] [workload ...]
#   d defaults to 10000; workloads (of `diffexp bench --only`) default to: normals draw update merged.
# Needs Linux perf (any event; `-e cpu-clock` works in VMs without hardware counters) and python3.
# BUDGET_CPU=N pins the runs to core N (default: the last core); BUDGET_SECS sets the seconds per
# workload (default 3).
#
# For each workload it profiles `diffexp bench --only`, takes the hottest loop of the machine code,
# and counts the µops it issues on the pipes that bound it, by the CPU's model (BUDGET_MODEL=intel
# or zen4 overrides the choice; `cargo run --release --example vector_pipes` measures what shares
# a core's FMA pipes):
#   intel  the two 512-bit ports (0 and 5) of Intel cores with AVX-512: everything but loads,
#          stores, moves and zeroing idioms, vsqrtps counting 3 and vcvtps2pd 2; two per cycle.
#   zen4   AMD Zen 4 (family 0x19), whose two 256-bit FMA pipes take one 512-bit operation per
#          cycle: FMAs, multiplies, rotates, two-source permutes and mask tests, which
#          `vector_pipes` measured as sharing them; one per cycle. Adds, shifts, conversions,
#          blends and plain logic run on other pipes. Ternary logic (vpternlog) is left out: alone
#          it issues more than one per cycle, so it can run off the FMA pipes, although beside
#          FMAs it slows them by most of its own time. Counting it would raise the bound by 0.44
#          µops per element in every loop that draws normals.
# The f32 → f64 flush of the running sums counts once per flush period, read from the loop's
# `test $mask` guard. That count over the per-cycle rate is a lower bound on the loop's time; the
# table sets it against the measured time and the core clock. "ratio at bound" is the workload at
# that bound over the measured 2d normals. "vector ops" counts every vector instruction but moves,
# loads, stores and broadcasts, on any pipe, per element; "per cycle" is its measured rate (on Zen 4
# the generator's loop runs about 1.3 per cycle whatever pipes they need). The count is for the
# AVX-512 build the CPU dispatches to; on other CPUs read it as a sketch.
set -euo pipefail
cd "$(dirname "$0")/.."
d=${1:-10000}
shift || true
if [ $# -gt 0 ]; then workloads=("$@"); else workloads=(normals draw update merged); fi
command -v perf >/dev/null || { echo "port_budget.sh: needs Linux perf" >&2; exit 1; }
if [ -z "${BUDGET_MODEL:-}" ]; then
  BUDGET_MODEL=intel
  if grep -q AuthenticAMD /proc/cpuinfo && [ "$(awk '/^cpu family/{print $4; exit}' /proc/cpuinfo)" = 25 ]; then
    BUDGET_MODEL=zen4
  fi
fi
case "$BUDGET_MODEL" in intel|zen4) ;; *) echo "port_budget.sh: BUDGET_MODEL must be intel or zen4, not '$BUDGET_MODEL'" >&2; exit 2;; esac
cargo build --release --quiet
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for w in "${workloads[@]}"; do
  taskset -c "${BUDGET_CPU:-$(($(nproc) - 1))}" perf record -q -e cpu-clock -o "$tmp/$w.perf" -- \
    ./target/release/diffexp bench --only "$w" --dims "$d" --secs "${BUDGET_SECS:-3}" --json >"$tmp/$w.json" 2>/dev/null
  perf annotate -i "$tmp/$w.perf" --stdio 2>/dev/null | awk '/Percent \|/{n++} n==1' >"$tmp/$w.asm"
done
python3 - "$tmp" "$d" "$BUDGET_MODEL" "${workloads[@]}" <<'PY'
import json, re, sys
tmp, d, model, names = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
# Zen 4: the mnemonics (by prefix) whose 512-bit forms share the FMA pipes.
ZEN4_FMA_PIPES = ("vfmadd", "vfmsub", "vfnmadd", "vfnmsub", "vmulp", "vprol", "vpror", "vpermt2", "vpermi2",
                  "vptestm", "vptestnm")
per_cycle = {"intel": 2, "zen4": 1}[model]
# d-length vectors each workload writes per element of d (its 512-bit stores per 16 elements).
# (The whole step runs several loops, so it gets no count.)
written = {"normals": 2, "gram-only": 2, "draw": 2, "update": 1, "merged": 3}
line = re.compile(r"\s*([0-9.]+)\s*:\s*([0-9a-f]+):\s*(.*)")

def hottest_loop(path):
    ins = [(float(m[1]), int(m[2], 16), m[3].split("#")[0].strip())
           for m in map(line.match, open(path)) if m]
    loops = []
    for _, a, t in ins:
        j = re.match(r"j\w+\s+([0-9a-f]+)", t)
        if j and int(j[1], 16) < a:
            lo = int(j[1], 16)
            loops.append((sum(p for p, b, _ in ins if lo <= b <= a), lo, a))
    # The shortest loop with at least 90 % of the top share: an outer loop around the kernel
    # (the bench's calls, its set-up) holds as many samples but is not the loop that runs.
    top = max(l[0] for l in loops)
    share, lo, hi = min((l for l in loops if l[0] >= 0.9 * top), key=lambda l: l[2] - l[1])
    return share, [(b, t) for _, b, t in ins if lo <= b <= hi]

def count(body):
    """µops on ports 0/5 per iteration, and 512-bit stores to the vectors."""
    # The f32 → f64 flush of the running sums (the loop's only f64 arithmetic) runs once per
    # mask + 1 iterations, `mask` being the loop's `test $mask` guard.
    masks = [int(m[1], 16) for _, t in body for m in [re.match(r"test\s+\$0x([0-9a-f]+),", t)] if m]
    period = masks[0] + 1 if masks else 1
    alu = stores = vec = 0.0
    for _, t in body:
        mn, ops = (t.split(None, 1) + [""])[:2]
        weight = 1.0 / period if mn in ("vcvtps2pd", "vextractf64x4", "vaddpd") else 1.0
        regs = re.findall(r"%[xyz]mm(\d+)", ops)
        if not mn.startswith("v"):
            continue
        if mn.startswith("vxor") and len(regs) == 3 and len(set(regs)) == 1:
            continue  # zeroing idiom
        if mn.startswith("vmov") or "broadcast" in mn:
            if ops.rstrip().endswith(")") and "rsp" not in ops and "zmm" in ops:
                stores += weight
            continue
        vec += weight
        if model == "zen4":
            alu += weight * (mn.startswith(ZEN4_FMA_PIPES) and "zmm" in ops)
        else:
            alu += weight * (3 if mn.startswith("vsqrt") else 2 if mn == "vcvtps2pd" else 1)
    return alu, stores, vec

rows = []
for w in names:
    r = json.load(open(f"{tmp}/{w}.json"))
    ghz, t = r["core_ghz"], r["timings"][0]
    share, body = hottest_loop(f"{tmp}/{w}.asm")
    alu, stores, vec = count(body)
    if w not in written or stores == 0:
        print(f"{w}: ratio {t['ratio_to_normals']:.2f}; no µop count (its hottest loop holds {share:.0f} % of samples)")
        continue
    per_iter = stores * 16 / written[w]          # elements of d per loop iteration
    uops = alu / per_iter                        # per element of d
    bound = uops / per_cycle                     # cycles per element at the model's rate
    meas = t["ns_per_call"] * ghz / d            # cycles per element, measured
    norm = t["ns_per_2d_normals"] * ghz / d
    rows.append((w, share, uops, bound, meas, bound / meas, t["ratio_to_normals"], bound / norm,
                 vec / per_iter, vec / per_iter / meas))
pipes = {"intel": "µops p0+p5", "zen4": "FMA-pipe µops"}[model]
print(f"d = {d}, core clock {ghz:.2f} GHz, model {model} ({pipes}, {per_cycle} per cycle); per element of d;"
      " ratios against the 2d normals measured in the same run")
print(f"{'workload':>10} {'loop share':>10} {pipes:>13} {'bound cyc':>10} {'measured cyc':>13} {'use':>9} {'ratio':>7} {'ratio at bound':>15} {'vector ops':>11} {'per cycle':>10}")
for w, share, uops, bound, meas, use, ratio, rb, vec, rate in rows:
    print(f"{w:>10} {share:>9.0f}% {uops:>13.2f} {bound:>10.2f} {meas:>13.2f} {use:>8.0%} {ratio:>7.2f} {rb:>15.2f} {vec:>11.2f} {rate:>10.2f}")
PY
