#!/usr/bin/env python3
"""PyTorch-CPU peer of diffexp's System B trainer, written the way the authors' public notebook trains:
a Dataset of target samples behind a DataLoader with batch size 1, `torch.optim.SGD`, and the summary
statistics (M, 𝒬, b) recorded after every step. One thread.

Same workload as `cargo bench --bench dae`: trimodal target (μ₁ = 3e₁, μ₂ = −3e₂, μ₃ = −3e₁, unit
variance), d = 1000, r = 2, tanh, t = 1/2 (x_t = (1 − t)x₀ + t x₁), η = 0.2, λ = 0, w(0) = 0.1√d μ_γ,
b(0) = 0, learning rate η on w and η/d² on b (SPEC §4.3).

Prints a JSON object with steps_per_second and the final b (which should follow
b(ϑ) = 1 − e^{−ϑ/2} with ϑ = η·steps/d).
"""
import argparse
import json
import math
import time

import torch

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=5000)
p.add_argument("--d", type=int, default=1000)
p.add_argument("--warmup", type=int, default=200)
args = p.parse_args()
torch.set_num_threads(1)
torch.manual_seed(0)
d, r, eta, t = args.d, 2, 0.2, 0.5
mus = torch.zeros(3, d)
mus[0, 0], mus[1, 1], mus[2, 0] = 3.0, -3.0, -3.0


class Trimodal(torch.utils.data.Dataset):
    """n fresh samples of ρ = ⅓ Σ N(μ_c, I), drawn on access."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        c = torch.randint(0, 3, (1,)).item()
        return mus[c] + torch.randn(d)


class DAE(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(0.1 * math.sqrt(d) * mus[:2].T.clone())
        self.b = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        h = torch.tanh(x @ self.w / math.sqrt(d))
        return self.b * x + h @ self.w.T / math.sqrt(d)


def train(n):
    model = DAE()
    opt = torch.optim.SGD([{"params": [model.w], "lr": eta}, {"params": [model.b], "lr": eta / d**2}])
    loader = torch.utils.data.DataLoader(Trimodal(n), batch_size=1, shuffle=True)
    stats = {"M": [], "Q": [], "b": []}
    for x1 in loader:
        x0 = torch.randn_like(x1)
        xt = (1 - t) * x0 + t * x1
        loss = 0.5 * ((model(xt) - x1) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            stats["M"].append((mus @ model.w / math.sqrt(d)).numpy().copy())
            stats["Q"].append((model.w.T @ model.w / d).numpy().copy())
            stats["b"].append(model.b.item())
    return stats


train(args.warmup)
t0 = time.perf_counter()
stats = train(args.steps)
dt = time.perf_counter() - t0
theta = eta * args.steps / d
print(json.dumps({
    "peer": "pytorch-cpu-dataloader-batch1",
    "torch": torch.__version__,
    "threads": torch.get_num_threads(),
    "d": d, "r": r, "steps": args.steps,
    "steps_per_second": args.steps / dt,
    "b_final": stats["b"][-1],
    "b_closed_form": 1 - math.exp(-theta / 2),
}))
