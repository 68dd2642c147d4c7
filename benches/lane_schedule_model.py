#!/usr/bin/env python3
"""Wall time of a reduced-engine study on T threads, predicted from its per-walker step counts.

Replays the rules of `reduced::schedule` (docs/reduced_engine.md §3) on the walkers' step counts
committed by `examples/reduced_study.rs`:
- jobs are handed out largest d first, walkers in order;
- each thread runs a group of 8 lanes and refills a lane from the queue when its walker finishes.
  A group takes walkers of any d (the scheduler does so when the d's update rules differ only in
  the step sizes, as in the hard-exponent config) or, with `--bound`, only of its own d (random
  spikes, drawn per d);
- when the queue holds no job the group may take and at most half the lanes are busy, the group
  moves its walkers to a group of half the width (8 -> 4 -> 2 -> 1);
- a lane step costs the same with idle lanes as with busy ones.

A group of width L full of walkers makes RATE[L] walker-steps per second (the lane step of
`cargo run --release --example reduced_speed` times the scheduler's overhead, below).

    python3 benches/lane_schedule_model.py DIMS [THREADS] [--bound | --per-d] [--results DIR]

By default every d is in one queue and groups mix d, as both `examples/reduced_study.rs` and
`diffexp study` run the hard-exponent config. `--bound` binds each group to one d; `--per-d` runs
the d one after another (how `examples/reduced_study.rs` ran before groups could mix d). Prints the
predicted wall time and the time at perfect scaling (every lane busy).
"""

import json
import sys

# Walker-steps per CPU second of a full group of L lanes: `taskset -c 1 target/release/examples/
# reduced_speed 2` at d = 10^3 (1, 2, 4 and 8 lanes), scaled to the study's own rate (bookkeeping,
# recovery checks): the d = 64 study runs 1.98e7 walker-steps per CPU second on one thread
# (`taskset -c 1 target/release/examples/reduced_study … --dims 64 --threads 1`), 1.1 times the
# 8-lane figure of `reduced_speed`, whose loop keeps every loss through `black_box`.
LANE_RATE = {1: 9.25e6, 2: 9.25e6, 4: 1.445e7, 8: 1.80e7}
BOOKKEEPING = 1.98e7 / LANE_RATE[8]
RATE = {L: r * BOOKKEEPING for L, r in LANE_RATE.items()}


def predict(steps_by_d, threads, mixed):
    jobs = [(d, s) for d in sorted(steps_by_d, reverse=True) for s in steps_by_d[d]]
    cursor = 0

    def peek():
        return jobs[cursor][0] if cursor < len(jobs) else None

    def take(d):
        nonlocal cursor
        if cursor < len(jobs) and (mixed or jobs[cursor][0] == d):
            cursor += 1
            return jobs[cursor - 1][1]
        return None

    class Thread:
        def __init__(self):
            self.time, self.width, self.lanes, self.d = 0.0, 0, [], None

        def start(self):
            self.d = peek()
            self.width, self.lanes = (8, []) if self.d is not None else (0, [])
            self.fill()

        def fill(self):
            while len(self.lanes) < self.width:
                s = take(self.d)
                if s is None:
                    break
                self.lanes.append(s)

        def next_event(self):
            return self.time + min(self.lanes) * self.width / RATE[self.width]

    pool = [Thread() for _ in range(threads)]
    for t in pool:
        t.start()
    while any(t.width for t in pool):
        # Events in time order, so the queue is taken from in the order it would be.
        t = min((t for t in pool if t.width), key=Thread.next_event)
        step = min(t.lanes)
        t.time = t.next_event()
        t.lanes = [s - step for s in t.lanes if s > step]
        t.fill()
        if not t.lanes:
            t.start()
            continue
        while t.width > 1 and len(t.lanes) <= t.width // 2 and (peek() is None if mixed else peek() != t.d):
            t.width //= 2
    total = sum(s for _, s in jobs)
    return max(t.time for t in pool), total / (RATE[8] * threads)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    mixed = not ("--bound" in sys.argv or "--per-d" in sys.argv)
    one_queue = "--per-d" not in sys.argv
    results = "docs/results/cumulant_independent_reduced"
    if "--results" in sys.argv:
        results = sys.argv[sys.argv.index("--results") + 1]
        args.remove(results)
    if not args:
        sys.exit(__doc__)
    dims = [int(x) for x in args[0].split(",")]
    threads = int(args[1]) if len(args) > 1 else 2
    steps_by_d = {}
    for d in dims:
        with open(f"{results}/walkers_d{d}.json") as f:
            steps_by_d[d] = [w["steps"] for w in json.load(f)["walkers"]]
    if one_queue:
        wall, perfect = predict(steps_by_d, threads, mixed)
    else:
        per_d = [predict({d: steps}, threads, False) for d, steps in steps_by_d.items()]
        wall, perfect = sum(w for w, _ in per_d), sum(p for _, p in per_d)
    total = sum(map(sum, steps_by_d.values()))
    how = "one queue, groups mix d" if mixed else "one queue, groups bound to one d" if one_queue else "one d after another"
    print(f"d = {dims}, {threads} threads, {how}: {total:.3e} walker-steps")
    print(f"predicted wall time {wall / 60:.1f} min; every lane busy {perfect / 60:.1f} min")


if __name__ == "__main__":
    main()
