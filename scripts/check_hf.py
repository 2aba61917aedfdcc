#!/usr/bin/env python3
"""normlab's `pre` checkpoints against Hugging Face transformers (the GPU kit's last step).

1. The `pre` reference case through `LlamaForCausalLM`: its logits and loss equal
   the case's expected values (which `normlab verify` checks normlab against), so
   MODEL.md's `pre` is transformers' LLaMA.
2. A tiny `pre` run trained by normlab with a small checkpoint shard size: its
   sharded checkpoint (model-0000K-of-0000N.safetensors + index) loads with
   `from_pretrained` with no missing or unexpected key, and gives the same logits
   as the model built from the shards' tensors read one by one.
Prints one JSON line at the end. Needs torch, transformers and safetensors.

    python3 scripts/check_hf.py --normlab ./normlab --golden golden/pre --work /tmp/hf
"""
import argparse
import glob
import json
import os
import subprocess
import sys

import torch
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM


def close(got, expected, rel=1e-4, abs_=1e-6):
    got, expected = torch.as_tensor(got, dtype=torch.float64), torch.as_tensor(expected, dtype=torch.float64)
    return bool(((got - expected).abs() <= rel * expected.abs() + abs_).all()), float(((got - expected).abs() / expected.abs().clamp_min(1e-12)).max())


def golden_case(case_dir, device):
    with open(os.path.join(case_dir, "config.json")) as f:
        c = json.load(f)
    config = LlamaConfig(vocab_size=c["vocab_size"], hidden_size=c["d_model"], intermediate_size=c["ffn_dim"],
                         num_hidden_layers=c["n_layers"], num_attention_heads=c["n_heads"], num_key_value_heads=c["n_heads"],
                         rms_norm_eps=c["norm_eps"], rope_theta=c["rope_theta"], max_position_embeddings=4096,
                         tie_word_embeddings=False, attention_bias=False, mlp_bias=False)
    model = LlamaForCausalLM(config).to(device).eval()
    model.load_state_dict(load_file(os.path.join(case_dir, "weights.safetensors")), strict=True)
    with open(os.path.join(case_dir, "batch.json")) as f:
        tokens = torch.tensor(json.load(f)["tokens"], device=device)
    with open(os.path.join(case_dir, "expected.json")) as f:
        expected = json.load(f)
    with torch.no_grad():
        logits = model(tokens[:, :-1]).logits.double()
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1)).item()
    checks = {
        "logits_first": close(logits[0, 0, :8].cpu(), expected["logits_first"]),
        "logits_last": close(logits[-1, -1, :8].cpu(), expected["logits_last"]),
        "loss": close([loss], [expected["loss"]]),
    }
    return {k: {"ok": ok, "max_rel_err": err} for k, (ok, err) in checks.items()}


def train_sharded(normlab, work, shard_key, config):
    os.makedirs(work, exist_ok=True)
    cmd = [normlab, "train", config, "--backend", "torch", "--quiet", "--set", "train.steps=2", "--set", "train.checkpoint_every=2",
           "--set", "train.eval_every=2", "--set", f"{shard_key}=100000"]
    r = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    if r.returncode != 0:
        return None, f"normlab train with {shard_key} failed (exit {r.returncode}): {(r.stderr or r.stdout).strip()[:300]}"
    indexes = sorted(glob.glob(os.path.join(work, "runs", "*", "checkpoints", "step-*", "model.safetensors.index.json")))
    if not indexes:
        return None, f"the checkpoint is not sharded ({shard_key}=100000 wrote no model.safetensors.index.json)"
    return os.path.dirname(indexes[-1]), None


def sharded_checkpoint(ckpt, device):
    model, info = LlamaForCausalLM.from_pretrained(ckpt, torch_dtype=torch.float32, output_loading_info=True)
    model = model.to(device).eval()
    with open(os.path.join(ckpt, "model.safetensors.index.json")) as f:
        index = json.load(f)
    shards = sorted(set(index["weight_map"].values()))
    tensors = {}
    for shard in shards:
        tensors.update(load_file(os.path.join(ckpt, shard)))
    reference = LlamaForCausalLM(model.config).to(device).eval()
    reference.load_state_dict(tensors, strict=True)
    tokens = torch.randint(0, model.config.vocab_size, (2, 32), generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():
        got, want = model(tokens).logits, reference(tokens).logits
    return {
        "shards": len(shards), "tensors": len(tensors),
        "missing_keys": info["missing_keys"], "unexpected_keys": info["unexpected_keys"],
        "max_abs_diff": float((got - want).abs().max()),
        "ok": not info["missing_keys"] and not info["unexpected_keys"] and bool(torch.equal(got, want)) and len(shards) > 1,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--normlab", required=True, help="the normlab launcher")
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--golden", default=os.path.join(here, "..", "..", "golden", "pre"), help="the `pre` reference case")
    parser.add_argument("--config", default=os.path.join(here, "..", "configs", "smoke.yaml"), help="a `pre` run config")
    parser.add_argument("--shard-key", default="train.checkpoint_shard_size", help="the config key of the checkpoint shard size")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work", required=True)
    args = parser.parse_args()
    device = args.device if args.device != "cuda" or torch.cuda.is_available() else "cpu"
    result = {"transformers": __import__("transformers").__version__, "device": device}
    result["golden_pre"] = golden_case(args.golden, device)
    ok = all(v["ok"] for v in result["golden_pre"].values())
    ckpt, reason = train_sharded(args.normlab, args.work, args.shard_key, args.config)
    if ckpt is None:
        print(f"sharded checkpoint: skipped: {reason}")
        result["sharded"] = {"skipped": reason}
    else:
        result["sharded"] = sharded_checkpoint(ckpt, device)
        ok = ok and result["sharded"]["ok"]
    result["ok"] = ok
    print(json.dumps(result))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
