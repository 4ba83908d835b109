#!/usr/bin/env python3
"""Reference fixtures for svlm-perception's OWLv2 / OWL-ViT parity tests (crates/svlm-perception/tests/owl_parity.rs).

Writes into crates/svlm-perception/tests/fixtures/owl/:

- `tiny-owlv2/`: a tiny random-weight `Owlv2ForObjectDetection` (`save_pretrained`), its
  `preprocessor_config.json` (the hub checkpoints' `Owlv2ImageProcessor` settings with a 64 px target) and a
  CLIP tokenizer (`tokenizer.json` and the slow files `vocab.json` + `merges.txt` + `special_tokens_map.json`,
  checked to tokenize alike; `CLIPTokenizer` of transformers 5 — the real CLIP normalizer, pre-tokenizer, byte-level BPE with
  `</w>` and RoBERTa-style post-processor — over a small vocabulary: the 512 byte symbols, merges for the query
  words, `<|startoftext|>` and `<|endoftext|>` last as in CLIP, pad token `!` = id 0 as the OWL checkpoints have).
- `tiny-owlvit/`: the same for OWL-ViT v1 (`OwlViTForObjectDetection`, no objectness head).
- `photo.png`: scikit-image's `coffee` (a real photo), downsized to 90 x 60 (not square, so padding shows).
- `reference.safetensors`: what transformers computes:
  - `input_ids` [Q, 16] (as int64) and `attention_mask`: the processor's text encoding of QUERIES;
  - `tokenizer_probe_ids` [4, 32]: the unpadded ids of TOKENIZER_PROBES, then -1;
  - `pixel_values` [1, 3, 64, 64]: `Owlv2ImageProcessorPil` (the PIL backend: pad to square with 0 at the
    bottom/right, Gaussian anti-aliasing + scipy `zoom` order 1, as the original skimage-based code) — the default
    `Owlv2ImageProcessor` backend when torchvision is absent;
  - `pixel_values_up` [1, 3, 96, 96]: the same photo resized *up* (no anti-aliasing, mirror boundary);
  - `pixel_values_down` [1, 3, 24, 24]: resized far down (sigma 1.375, a 13-tap blur);
  - `pixel_values_corner` [1, 3, 2, 2]: the photo's top-left 6 x 4 pixels to 2 x 2 (a 9-tap blur on 6-pixel
    lines: the mirror boundary reaches across the image);
  - `logits` [1, 16, Q], `pred_boxes` [1, 16, 4], `objectness_logits` [1, 16], `image_embeds` [1, 4, 4, C],
    `text_embeds` [1, Q, P], `class_embeds` [1, 16, P], `image_level_embeds` [1, P] (the CLIP image embedding);
  - `detections`: `post_process_object_detection(threshold=THRESHOLD, target_sizes=[(h, w)])` as
    [n, 6] rows (score, label, x0, y0, x1, y1), and `threshold`;
  - `owlvit_pixel_values`, `owlvit_logits`, `owlvit_pred_boxes`, `owlvit_detections` for OWL-ViT v1
    (`OwlViTImageProcessorPil`: bicubic resize to 64 x 64 with Pillow, centre crop, CLIP normalization).

Weights are redrawn larger than HF's init so that mistakes show in the outputs. Needs torch + transformers 5.x +
scipy + scikit-image + pillow; CI never runs it. Rerun from the repository root:
    python3 scripts/make_owl_fixtures.py
"""

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from skimage import data as skdata
from transformers import (
    CLIPTokenizer,
    Owlv2Config,
    Owlv2ForObjectDetection,
    OwlViTConfig,
    OwlViTForObjectDetection,
)
from transformers.convert_slow_tokenizer import bytes_to_unicode
from transformers.models.owlv2.image_processing_pil_owlv2 import Owlv2ImageProcessorPil
from transformers.models.owlvit.image_processing_pil_owlvit import OwlViTImageProcessorPil

OUT = Path(__file__).resolve().parent.parent / "crates" / "svlm-perception" / "tests" / "fixtures" / "owl"

QUERIES = ["a photo of a cup", "coffee", "a spoon on a saucer", "Plate, TABLE!"]
# Harder strings for the tokenizer alone: whitespace runs, case, accents (NFC, byte-level), digits, contractions.
TOKENIZER_PROBES = ["Two  CATS!!", "caf\u00e9 au lait\t", "a 3-legged table's top", "\u5496\u5561 cup"]
IMAGE_SIZE = 64


def tiny_tokenizer():
    """A CLIP tokenizer whose vocabulary covers QUERIES with real merges (so words become one or a few tokens)."""
    symbols = list(bytes_to_unicode().values())
    vocab = {s: i for i, s in enumerate(symbols)}
    for s in symbols:
        vocab[s + "</w>"] = len(vocab)
    merges = []
    words = ["photo", "of", "cup", "coffee", "spoon", "on", "saucer", "plate", "table", "a"]
    for word in words:
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            merged = parts[0] + parts[1]
            if (parts[0], parts[1]) not in merges:
                merges.append((parts[0], parts[1]))
            if merged not in vocab:
                vocab[merged] = len(vocab)
            parts = [merged] + parts[2:]
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=merges, pad_token="!", model_max_length=16)


def write_vocab_and_merges(tokenizer, model_dir):
    """The slow-tokenizer files (as the google/owl* hub repos ship them), checked to tokenize like tokenizer.json."""
    state = json.loads(tokenizer._tokenizer.to_str())["model"]
    (model_dir / "vocab.json").write_text(json.dumps(state["vocab"], ensure_ascii=False) + "\n")
    lines = ["#version: 0.2"] + [" ".join(pair) for pair in state["merges"]]
    (model_dir / "merges.txt").write_text("\n".join(lines) + "\n")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "!", "unk_token": "<|endoftext|>"}
    (model_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")
    with tempfile.TemporaryDirectory() as tmp:
        for f in ["vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json"]:
            shutil.copy(model_dir / f, Path(tmp) / f)
        slow = CLIPTokenizer.from_pretrained(tmp)
        for q in QUERIES + TOKENIZER_PROBES:
            assert slow(q)["input_ids"] == tokenizer(q)["input_ids"], q


def scramble(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("logit_scale") and p.dim() == 0:
                p.fill_(2.0)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "embedding" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel() if p.dim() > 1 else p.numel()
                p.copy_(torch.randn(p.shape, generator=g) * (1.2 / fan_in**0.5))


def configs(vocab_size):
    text = dict(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=16,
        pad_token_id=0,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
    )
    vision = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=16,
    )
    return text, vision


def detections_rows(result):
    rows = [
        [float(s), float(l), *[float(v) for v in b]]
        for s, l, b in zip(result["scores"], result["labels"], result["boxes"])
    ]
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 6)


def threshold_between(scores):
    """A threshold in the widest gap among the middle scores, so float noise cannot flip a detection."""
    s = np.sort(scores.flatten())
    lo, hi = len(s) // 4, 3 * len(s) // 4
    gaps = s[lo + 1 : hi + 1] - s[lo:hi]
    i = lo + int(np.argmax(gaps))
    return float((s[i] + s[i + 1]) / 2)


def save_model(model, processor_config, name):
    model_dir = OUT / name
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model.save_pretrained(model_dir, safe_serialization=True)
    # A fresh tokenizer: the one used above carries the padding state of its last call into tokenizer.json.
    tokenizer = tiny_tokenizer()
    tokenizer.save_pretrained(model_dir)
    if name == "tiny-owlv2":
        write_vocab_and_merges(tokenizer, model_dir)
    (model_dir / "preprocessor_config.json").write_text(json.dumps(processor_config, indent=2) + "\n")
    return model_dir


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    vocab_size = len(tokenizer)
    text, vision = configs(vocab_size)

    photo = Image.fromarray(skdata.coffee()).resize((90, 60), Image.Resampling.BICUBIC)
    photo.save(OUT / "photo.png")
    photo = Image.open(OUT / "photo.png").convert("RGB")
    target_sizes = [(photo.height, photo.width)]

    enc = tokenizer(QUERIES, padding="max_length", max_length=16, return_tensors="pt")
    input_ids, attention_mask = enc["input_ids"], enc["attention_mask"]
    tensors = {"input_ids": input_ids.to(torch.int64), "attention_mask": attention_mask.to(torch.int64)}
    probes = torch.full((len(TOKENIZER_PROBES), 32), -1, dtype=torch.int64)
    for i, probe in enumerate(TOKENIZER_PROBES):
        ids = tokenizer(probe)["input_ids"]
        probes[i, : len(ids)] = torch.tensor(ids)
    tensors["tokenizer_probe_ids"] = probes

    # ---------------------------------------------------------------- OWLv2
    config = Owlv2Config(text_config=text, vision_config=vision, projection_dim=32)
    model = Owlv2ForObjectDetection(config).eval()
    scramble(model, 1)
    v2_processor_config = {
        "image_processor_type": "Owlv2ImageProcessor",
        "do_normalize": True,
        "do_pad": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "resample": 2,
        "rescale_factor": 0.00392156862745098,
        "size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    }
    save_model(model, v2_processor_config, "tiny-owlv2")
    kwargs = {k: v for k, v in v2_processor_config.items() if k != "image_processor_type"}
    processor = Owlv2ImageProcessorPil(**kwargs)
    pixel_values = processor(images=photo, return_tensors="pt")["pixel_values"]
    up = Owlv2ImageProcessorPil(**{**kwargs, "size": {"height": 96, "width": 96}})
    tensors["pixel_values_up"] = up(images=photo, return_tensors="pt")["pixel_values"]
    down = Owlv2ImageProcessorPil(**{**kwargs, "size": {"height": 24, "width": 24}})
    tensors["pixel_values_down"] = down(images=photo, return_tensors="pt")["pixel_values"]
    two = Owlv2ImageProcessorPil(**{**kwargs, "size": {"height": 2, "width": 2}})
    tensors["pixel_values_corner"] = two(images=photo.crop((0, 0, 6, 4)), return_tensors="pt")["pixel_values"]

    with torch.no_grad():
        out = model(input_ids=input_ids, pixel_values=pixel_values, attention_mask=attention_mask)
        base = model.owlv2(input_ids=input_ids, pixel_values=pixel_values, attention_mask=attention_mask)
    threshold = threshold_between(torch.sigmoid(out.logits.max(-1).values).numpy())
    result = processor.post_process_object_detection(out, threshold=threshold, target_sizes=target_sizes)[0]
    tensors.update(
        {
            "pixel_values": pixel_values,
            "logits": out.logits,
            "pred_boxes": out.pred_boxes,
            "objectness_logits": out.objectness_logits,
            "image_embeds": out.image_embeds,
            "text_embeds": out.text_embeds,
            "class_embeds": out.class_embeds,
            "image_level_embeds": base.image_embeds,
            "detections": detections_rows(result),
            "threshold": torch.tensor([threshold], dtype=torch.float32),
        }
    )
    print(f"owlv2: {len(result['scores'])} detections above {threshold:.4f}")

    # ---------------------------------------------------------------- OWL-ViT v1
    config = OwlViTConfig(text_config=text, vision_config=vision, projection_dim=32)
    model = OwlViTForObjectDetection(config).eval()
    scramble(model, 2)
    v1_processor_config = {
        "image_processor_type": "OwlViTImageProcessor",
        "crop_size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        "do_center_crop": False,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "resample": 3,
        "rescale_factor": 0.00392156862745098,
        "size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    }
    save_model(model, v1_processor_config, "tiny-owlvit")
    processor = OwlViTImageProcessorPil(**{k: v for k, v in v1_processor_config.items() if k != "image_processor_type"})
    pixel_values = processor(images=photo, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        out = model(input_ids=input_ids, pixel_values=pixel_values, attention_mask=attention_mask)
    v1_threshold = threshold_between(torch.sigmoid(out.logits.max(-1).values).numpy())
    result = processor.post_process_object_detection(out, threshold=v1_threshold, target_sizes=target_sizes)[0]
    tensors.update(
        {
            "owlvit_pixel_values": pixel_values,
            "owlvit_logits": out.logits,
            "owlvit_pred_boxes": out.pred_boxes,
            "owlvit_detections": detections_rows(result),
            "owlvit_threshold": torch.tensor([v1_threshold], dtype=torch.float32),
        }
    )
    print(f"owlvit: {len(result['scores'])} detections above {v1_threshold:.4f}")

    save_file({k: v.contiguous() for k, v in tensors.items()}, OUT / "reference.safetensors")
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"wrote {OUT} ({total / 1024:.0f} KiB), input_ids:\n{input_ids}")


if __name__ == "__main__":
    main()
