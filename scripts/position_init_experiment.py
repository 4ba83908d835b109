"""Why svlm re-initializes the vision position embeddings of from-scratch models (experiments/position_init.md).

Trains transformers' Idefics3ForConditionalGeneration, with the tiny config of `svlm bench train`
(crates/svlm-train/src/bench.rs), on one question whose text never changes: "what colour is the square, and on
which side is it?" (red/blue square of 16 px at a random place in the left or right half of a 64x64 gray image).
Only the pixels decide the answer. Prints held-out accuracy of the colour and the side word.

    python3 scripts/position_init_experiment.py --steps 400                 # transformers' init (std 0.02)
    python3 scripts/position_init_experiment.py --steps 400 --pos-std 1.0   # svlm's from-scratch init

The Rust twin is crates/svlm-train/tests/vlm_learns_pixels.rs. Needs torch + transformers (not run by CI).
"""
import argparse
import math

import numpy as np
import torch
from transformers import Idefics3Config, Idefics3ForConditionalGeneration

CONFIG = {
    "image_token_id": 511, "scale_factor": 2, "tie_word_embeddings": False,
    "vision_config": {"model_type": "idefics3_vision", "hidden_size": 64, "intermediate_size": 128,
                      "num_hidden_layers": 2, "num_attention_heads": 4, "image_size": 64, "patch_size": 8,
                      "num_channels": 3, "layer_norm_eps": 1e-6, "hidden_act": "gelu_pytorch_tanh"},
    "text_config": {"model_type": "llama", "vocab_size": 512, "hidden_size": 128, "intermediate_size": 256,
                    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32,
                    "rms_norm_eps": 1e-5, "max_position_embeddings": 512, "rope_theta": 10000.0,
                    "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
                    "hidden_act": "silu"},
}
BOS, EOS, FAKE, GLOBAL, USER, ASSISTANT, IMAGE, IMAGE_SEQ = 1, 2, 3, 4, 5, 6, 511, 16
COLORS = [[230, 40, 40], [40, 60, 230]]


def sample(i, rng):
    color, side, size = i % 2, (i // 2) % 2, 16
    x0 = rng.integers(0, 32 - size) if side == 0 else rng.integers(32, 64 - size)
    y0 = rng.integers(0, 64 - size)
    img = np.full((64, 64, 3), 90, np.uint8)
    img[y0:y0 + size, x0:x0 + size] = COLORS[color]
    pixels = (torch.tensor(img).permute(2, 0, 1).float() / 255 - 0.5) / 0.5
    ids = [BOS, USER, FAKE, GLOBAL] + [IMAGE] * IMAGE_SEQ + [FAKE, 10, 11, 12, EOS, ASSISTANT, 20 + color, 30 + side, EOS]
    labels = [-100] * (len(ids) - 3) + [20 + color, 30 + side, EOS]
    return ids, labels, pixels


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--pos-std", type=float, default=None, help="re-draw the position embeddings from N(0, std^2)")
    args = parser.parse_args()
    torch.manual_seed(3)
    model = Idefics3ForConditionalGeneration(Idefics3Config(**CONFIG)).train()
    if args.pos_std is not None:
        model.model.vision_model.embeddings.position_embedding.weight.data.normal_(0, args.pos_std)
    train_rng, test_rng = np.random.default_rng(1), np.random.default_rng(2)
    train = [sample(i, train_rng) for i in range(256)]
    test = [sample(i, test_rng) for i in range(32)]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1, (s + 1) / 10) * 0.5 * (1 + math.cos(math.pi * min(s, args.steps) / args.steps)))
    gen = torch.Generator().manual_seed(0)
    mask = lambda n: torch.ones(n, 1, 64, 64, dtype=torch.bool)
    for step in range(args.steps):
        idx = torch.randint(0, len(train), (16,), generator=gen)
        out = model(input_ids=torch.tensor([train[i][0] for i in idx]),
                    labels=torch.tensor([train[i][1] for i in idx]),
                    pixel_values=torch.stack([train[i][2] for i in idx])[:, None], pixel_attention_mask=mask(16))
        opt.zero_grad()
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 50 == 0:
            print(f"step {step}: loss {out.loss.item():.4f}", flush=True)
    model.eval()
    with torch.no_grad():
        ids = torch.tensor([t[0] for t in test])
        logits = model(input_ids=ids, pixel_values=torch.stack([t[2] for t in test])[:, None],
                       pixel_attention_mask=mask(len(test))).logits
    t = ids.shape[1]
    colour = (logits[:, t - 4].argmax(-1) == torch.tensor([x[1][-3] for x in test])).sum().item()
    side = (logits[:, t - 3].argmax(-1) == torch.tensor([x[1][-2] for x in test])).sum().item()
    print(f"final loss {out.loss.item():.4f}; held-out colour {colour}/{len(test)}, side {side}/{len(test)}")


if __name__ == "__main__":
    main()
