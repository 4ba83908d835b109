#!/usr/bin/env python3
"""PyTorch side of `svlm bench model`: forward+backward time of the same small Llama config on
the CPU. Prints one JSON object. Usage (the Rust side calls it this way):
    python3 scripts/bench_model_torch.py --hidden 256 --layers 4 --seq 256 --batch 4 --iters 5
"""

import argparse
import json
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--intermediate", type=int, default=688)
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="0 = torch default")
    ap.add_argument("--attn", default="eager", help="eager (as svlm) or sdpa")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--dtype", default="f32", help="f32, bf16 or f16 (weights and activations, as svlm)")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=a.vocab,
        hidden_size=a.hidden,
        intermediate_size=a.intermediate,
        num_hidden_layers=a.layers,
        num_attention_heads=a.heads,
        num_key_value_heads=a.kv_heads,
        max_position_embeddings=max(2048, a.seq),
        tie_word_embeddings=False,
    )
    cfg._attn_implementation = a.attn
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[a.dtype]
    model = LlamaForCausalLM(cfg).to(device=a.device, dtype=dtype).train()
    ids = torch.randint(0, a.vocab, (a.batch, a.seq), device=a.device)
    mask = torch.ones_like(ids)

    def sync():
        if a.device != "cpu":
            torch.cuda.synchronize()

    def step():
        model.zero_grad(set_to_none=True)
        out = model(input_ids=ids, attention_mask=mask, labels=ids)
        out.loss.backward()
        sync()

    def forward():
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask)
        sync()

    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.iters):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    fwd = []
    for _ in range(a.iters):
        t = time.perf_counter()
        forward()
        fwd.append(time.perf_counter() - t)
    times.sort()
    fwd.sort()
    print(json.dumps({
        "framework": f"torch {torch.__version__} on {a.device} ({a.dtype})",
        "threads": torch.get_num_threads(),
        "attn": a.attn,
        "forward_backward_ms_median": 1000 * times[len(times) // 2],
        "forward_ms_median": 1000 * fwd[len(fwd) // 2],
        "params": sum(p.numel() for p in model.parameters()),
    }))


if __name__ == "__main__":
    main()
