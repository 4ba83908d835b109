#!/usr/bin/env python3
"""PyTorch reference for `svlm bench train`: the same Idefics3 shape (transformers, from the same config.json, with
its default attention implementation, sdpa), the same data files and encoding rule (crates/svlm-train/src/bench.rs),
the same batch size, AdamW and global-norm clipping, every core (PyTorch's default thread count). Per-step time includes reading the row, decoding the PNG, encoding, padding, forward, backward and the
optimizer step, as the svlm loop's does.

    python3 scripts/bench_train_torch.py --work out/bench_train/work --batch-size 8 --steps 20 --warmup 3 --json t.json

Not run by CI (needs torch + transformers).
"""

import argparse
import json
import random
import resource
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import Idefics3Config, Idefics3ForConditionalGeneration

PAD, BOS, EOS, FAKE, GLOBAL, USER, ASSISTANT = 0, 1, 2, 3, 4, 5, 6
IGNORE = -100


def encode(row, root, image_token, image_seq_len):
    ids, labels, pixels = [BOS], [IGNORE], []
    image_index = 0
    for m in row["messages"]:
        assistant = m["role"] == "assistant"
        ids.append(ASSISTANT if assistant else USER)
        labels.append(IGNORE)
        content = m["content"]
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        for part in parts:
            if part["type"] == "text":
                for w in part["text"].split():
                    tok = int(w[1:])
                    ids.append(tok)
                    labels.append(tok if assistant else IGNORE)
            else:
                img = Image.open(root / row["images"][image_index]).convert("RGB")
                image_index += 1
                arr = np.asarray(img, dtype=np.float32).transpose(2, 0, 1)
                pixels.append((arr / 255.0 - 0.5) / 0.5)
                block = [FAKE, GLOBAL] + [image_token] * image_seq_len + [FAKE]
                ids.extend(block)
                labels.extend([IGNORE] * len(block))
        ids.append(EOS)
        labels.append(EOS if assistant else IGNORE)
    return ids, labels, pixels


def collate(samples):
    longest = max(len(s[0]) for s in samples)
    b = len(samples)
    ids = torch.full((b, longest), PAD, dtype=torch.long)
    labels = torch.full((b, longest), IGNORE, dtype=torch.long)
    mask = torch.zeros((b, longest), dtype=torch.long)
    tiles = max(len(s[2]) for s in samples)
    size = samples[0][2][0].shape[-1]
    pixels = torch.zeros((b, tiles, 3, size, size))
    pmask = torch.zeros((b, tiles, size, size), dtype=torch.bool)
    real = 0
    for i, (s_ids, s_labels, s_pixels) in enumerate(samples):
        n = len(s_ids)
        ids[i, :n] = torch.tensor(s_ids)
        labels[i, :n] = torch.tensor(s_labels)
        mask[i, :n] = 1
        real += n
        for t, p in enumerate(s_pixels):
            pixels[i, t] = torch.from_numpy(p)
            pmask[i, t] = True
    return dict(input_ids=ids, attention_mask=mask, labels=labels, pixel_values=pixels, pixel_attention_mask=pmask), real, b * longest


def peak_rss_mb():
    """This process's own peak resident memory. `ru_maxrss` would not do: Linux carries the parent's peak across
    fork + exec into it, so run from `svlm bench train` it would report svlm's peak when that is higher."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--json", type=Path, required=True)
    args = ap.parse_args()

    torch.manual_seed(0)
    cfg_json = json.loads((args.work / "model" / "config.json").read_text())
    config = Idefics3Config(**{k: v for k, v in cfg_json.items() if k not in ("architectures", "model_type")})
    model = Idefics3ForConditionalGeneration(config).train()
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, attention: {model.config._attn_implementation}")
    vision = cfg_json["vision_config"]
    image_seq_len = (vision["image_size"] // vision["patch_size"]) ** 2 // cfg_json["scale_factor"] ** 2
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)

    data_dir = args.work / "data"
    offsets = []
    with open(data_dir / "bench.jsonl", "rb") as f:
        pos = 0
        for line in f:
            if line.strip():
                offsets.append(pos)
            pos += len(line)
    order, epoch, cursor = [], 0, 0
    rng = random.Random(0)

    def next_row():
        nonlocal order, epoch, cursor
        if cursor >= len(order):
            order = list(range(len(offsets)))
            rng.shuffle(order)
            epoch += 1
            cursor = 0
        idx = order[cursor]
        cursor += 1
        with open(data_dir / "bench.jsonl", "rb") as f:
            f.seek(offsets[idx])
            return json.loads(f.readline())

    times, samples, tokens, padded, loss_value = [], 0, 0, 0, float("nan")
    for step in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        batch = [encode(next_row(), data_dir, cfg_json["image_token_id"], image_seq_len) for _ in range(args.batch_size)]
        inputs, real, total = collate(batch)
        out = model(**inputs)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss_value = float(out.loss.detach())
        dt = time.perf_counter() - t0
        if step >= args.warmup:
            times.append(dt)
            samples += len(batch)
            tokens += real
            padded += total
    elapsed = sum(times)
    result = dict(
        samples_per_s=samples / elapsed,
        tokens_per_s=tokens / elapsed,
        pad_fraction=1.0 - tokens / padded,
        peak_rss_mb=peak_rss_mb(),
        final_loss=loss_value,
    )
    args.json.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
