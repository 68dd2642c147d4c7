#!/usr/bin/env python3
"""A plain numpy implementation of diffexp's single-direction pSGD step (SPEC §2.6), the peer for
`benches/peer/compare.sh`. Same workload: mixed cumulant model with 3 orthonormal spikes
(β_m = 0, β_u = 3, β_v = 6, Rademacher ν, independent coupling), fresh sample and fresh noise every
step, tanh denoiser with b = 1 at a² = 0.5, tangent projection and renormalisation.

Run pinned to one BLAS thread (compare.sh sets OPENBLAS_NUM_THREADS=1 etc.):
    python3 benches/peer/numpy_psgd.py --d 1000 --steps 20000
Prints one JSON line: {"d": ..., "steps": ..., "seconds": ..., "us_per_step": ...}.
"""
import argparse
import json
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--d", type=int, required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    d, steps = args.d, args.steps
    rng = np.random.default_rng(args.seed)
    q, _ = np.linalg.qr(rng.standard_normal((d, 3)))
    m, u, v = q[:, 0], q[:, 1], q[:, 2]
    beta_m, beta_u, beta_v = 0.0, 3.0, 6.0
    c_s = beta_v / (1 + beta_v + np.sqrt(1 + beta_v))
    s_v = np.sqrt(beta_v / (1 + beta_v))
    a = np.sqrt(0.5)
    s = np.sqrt(1 - a * a)
    b = 1.0
    eta = 0.2 / d
    w = rng.standard_normal(d)
    w /= np.linalg.norm(w)
    t0 = time.perf_counter()
    for _ in range(steps):
        lam = rng.standard_normal()
        nu = 1.0 if rng.random() < 0.5 else -1.0
        z = rng.standard_normal(d)
        x = beta_m * m + np.sqrt(beta_u) * lam * u + z + (s_v * nu - c_s * (v @ z)) * v
        xi = rng.standard_normal(d)
        xt = a * x + s * xi
        h = w @ xt
        sig = np.tanh(h)
        dsig = 1 - sig * sig
        e = a * xt + b * sig * w - x
        pi = w @ e
        grad = b * sig * e + b * dsig * pi * xt
        g = grad - (w @ grad) * w
        w = w - eta * g
        w /= np.linalg.norm(w)
    el = time.perf_counter() - t0
    print(json.dumps({"d": d, "steps": steps, "seconds": el, "us_per_step": el / steps * 1e6,
                      "overlap_u": float(w @ u)}))


if __name__ == "__main__":
    main()
