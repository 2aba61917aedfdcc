#!/usr/bin/env python3
"""The step `normlab bench` times, in PyTorch, for a side-by-side comparison.

Same model (MODEL.md §1-§3, `pre` with RMSNorm), same step: forward,
cross-entropy, backward, global-norm clip, AdamW. Synthetic tokens, as in
`normlab bench`. Not a dependency of normlab and not run in CI.

    OPENBLAS_NUM_THREADS=1 python3 scripts/bench_pytorch.py configs/bench/tiny.yaml --threads 2
    python3 scripts/bench_pytorch.py configs/bench/130m.yaml --device cuda --precision bf16 --batch 64

On CUDA it is PyTorch eager at its best: scaled_dot_product_attention, fused
AdamW, `--precision tf32` allows TF32 products, `bf16` is autocast to bfloat16
with float32 weights, optimizer state and gradients (what normlab's bf16 does).
"""
import argparse
import json
import math
import os
import statistics
import time

import torch
import torch.nn.functional as F
import yaml


# src/config/presets.ts: vocab, hidden, ffn, blocks, heads.
PRESETS = {
    "71m": (32000, 512, 1368, 12, 8), "130m": (32000, 768, 2048, 12, 12), "250m": (32000, 768, 2560, 24, 16),
    "350m": (32000, 1024, 2736, 24, 16), "1b": (32000, 2048, 5461, 24, 32),
}


def load_config(path):
    with open(path) as f:
        raw = yaml.safe_load(f)
    model, train = dict(raw["model"]), raw.get("train", {})
    if "preset" in model:
        if model["preset"] not in PRESETS:
            raise SystemExit(f"{path}: preset {model['preset']} is not one this script knows ({', '.join(PRESETS)})")
        preset = dict(zip(["vocab_size", "d_model", "ffn_dim", "n_layers", "n_heads"], PRESETS[model.pop("preset")]))
        model = {**preset, **model}
    if model.get("norm", "pre") != "pre" or model.get("norm_type", "rmsnorm") != "rmsnorm":
        raise SystemExit(f"{path}: this script implements only norm: pre with norm_type: rmsnorm")
    return {
        "vocab": model["vocab_size"], "d": model["d_model"], "layers": model["n_layers"],
        "heads": model["n_heads"], "ffn": model["ffn_dim"], "eps": model.get("norm_eps", 1e-6),
        "theta": model.get("rope_theta", 10000), "batch": train.get("batch_size", 8),
        "seq": train.get("seq_len", 128), "lr": train.get("lr", 1e-3),
    }


class RMSNorm(torch.nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        # Norms in float32 under autocast, as in normlab's bf16.
        y = x.float()
        return (y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight).to(x.dtype)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


class Block(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        d, f = c["d"], c["ffn"]
        self.heads = c["heads"]
        self.q, self.k, self.v, self.o = (torch.nn.Linear(d, d, bias=False) for _ in range(4))
        self.gate, self.up = torch.nn.Linear(d, f, bias=False), torch.nn.Linear(d, f, bias=False)
        self.down = torch.nn.Linear(f, d, bias=False)
        self.norm_in, self.norm_ffn = RMSNorm(d, c["eps"]), RMSNorm(d, c["eps"])

    def attn(self, x, cos, sin, mask):
        B, T, d = x.shape
        hd = d // self.heads
        heads = lambda y: y.view(B, T, self.heads, hd).transpose(1, 2)
        q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x))
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        if x.is_cuda:  # flash / memory-efficient attention
            return self.o(F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, d))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + mask, dim=-1)
        return self.o((a @ v).transpose(1, 2).reshape(B, T, d))

    def forward(self, x, cos, sin, mask):
        u = x + self.attn(self.norm_in(x), cos, sin, mask)
        h = self.norm_ffn(u)
        return u + self.down(F.silu(self.gate(h)) * self.up(h))


class Model(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed = torch.nn.Embedding(c["vocab"], c["d"])
        self.blocks = torch.nn.ModuleList(Block(c) for _ in range(c["layers"]))
        self.norm = RMSNorm(c["d"], c["eps"])
        self.head = torch.nn.Linear(c["d"], c["vocab"], bias=False)
        for p in self.parameters():
            if p.dim() >= 2:
                torch.nn.init.normal_(p, std=0.02)
        T, hd = c["seq"], c["d"] // c["heads"]
        inv_freq = c["theta"] ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
        angles = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)
        self.register_buffer("cos", torch.cat([angles.cos()] * 2, -1).float(), persistent=False)
        self.register_buffer("sin", torch.cat([angles.sin()] * 2, -1).float(), persistent=False)
        self.register_buffer("mask", torch.full((T, T), -1e9).triu(1), persistent=False)

    def forward(self, ids):
        h = self.embed(ids)
        for block in self.blocks:
            h = block(h, self.cos, self.sin, self.mask)
        return self.head(self.norm(h))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("--steps", type=int, default=20, help="timed steps after 3 warm-up steps")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default="fp32")
    parser.add_argument("--batch", type=int, help="sequences per step (default: the config's train.batch_size)")
    parser.add_argument("--seq", type=int, help="tokens per sequence (default: the config's train.seq_len)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    c = load_config(args.config)
    c["batch"], c["seq"] = args.batch or c["batch"], args.seq or c["seq"]
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = args.precision == "tf32"
    torch.backends.cudnn.allow_tf32 = args.precision == "tf32"
    model = Model(c).to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay}, {"params": rest, "weight_decay": 0.0}],
                                  lr=c["lr"], betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0, **({"fused": True} if cuda else {}))
    tokens = torch.randint(0, c["vocab"], (c["batch"], c["seq"] + 1), device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")

    def step():
        with autocast:
            logits = model(tokens[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, c["vocab"]), tokens[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss

    def timed():
        started = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - started

    for _ in range(3):
        step().item()
    times = [timed() for _ in range(args.steps)]
    ms = statistics.median(times) * 1000
    tokens_per_s = c["batch"] * c["seq"] / (ms / 1000)
    result = {
        "torch": torch.__version__, "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "precision": args.precision, "batch": c["batch"], "seq": c["seq"], "threads": torch.get_num_threads(),
        "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"), "parameters": sum(p.numel() for p in model.parameters()),
        "ms_per_step": round(ms, 2), "tokens_per_s": round(tokens_per_s, 1),
        **({"peak_memory_mib": round(torch.cuda.max_memory_allocated(device) / 2**20)} if cuda else {}),
    }
    print(json.dumps(result) if args.json else
          f"pytorch {result['torch']} on {result['device']} ({args.precision}, {result['threads']} threads): {ms:.1f} ms/step, {tokens_per_s:,.0f} tokens/s, "
          f"{result['parameters']:,} parameters")


if __name__ == "__main__":
    main()
