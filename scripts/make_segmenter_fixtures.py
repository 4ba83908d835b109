#!/usr/bin/env python3
"""Reference fixtures for svlm-perception's SAM parity tests (crates/svlm-perception/tests/segmenter_parity.rs).

Writes into crates/svlm-perception/tests/fixtures/sam/:

- `tiny-sam/`: a tiny random-weight `SamModel` (`save_pretrained`: ViT image encoder with windowed and global
  attention, relative position embeddings and an absolute position embedding, neck, prompt encoder, two-way
  mask decoder) and its `preprocessor_config.json` (the hub checkpoints' `SamImageProcessor` settings with an
  80 px longest edge). The 10 x 10 patch grid does not divide into the 4 x 4 windows, so window padding is
  exercised.
- `reference.safetensors`: what transformers computes for `chelsea_small.png` (96 x 64, resized *down* to
  80 x 53 and padded to 80 x 80) and BOXES:
  - `pixel_values` [1, 3, 80, 80]: `SamProcessor` with the PIL backend (`SamImageProcessorPil`: Pillow bilinear
    resize of the longest side, rescale, ImageNet normalization, zero padding at the bottom/right);
  - `input_boxes` [1, 4, 4]: the processor's boxes in the resized frame;
  - `vision_hidden_states.{i}` [1, 10, 10, 32] after each encoder layer, `image_embeddings` [1, 32, 10, 10];
  - `sparse_embeddings` [1, 4, 2, 32], `dense_embeddings` [1, 32, 10, 10] (prompt encoder);
  - `iou_scores` [1, 4, 3], `pred_masks` [1, 4, 3, 40, 40] (multimask output) and `pred_masks_f64` (the same
    model in float64, stored as f32: transformers' own float32 noise),;
  - `best_mask_index` [4] (int64): the multimask output with the highest predicted IoU, per box;
  - `post_processed_logits` [4, 64, 96]: `post_process_masks(binarize=False)` (bilinear to the padded size,
    crop, bilinear to the photo) of each box's best mask, `post_processed_masks` [4, 3, 64, 96] (u8, the
    default `> 0.0`) of all three;
  - `vision_hidden_states.{i}`: the patch embeddings plus position embedding, then each layer's output.

Weights are redrawn larger than HF's init (which leaves the relative and absolute position embeddings at zero)
and the hypernetwork outputs are rescaled so mask logits have a spread of a few units: the float32 comparison at
1e-4 is then meaningful and thresholding at 0 splits every mask. Needs torch + transformers 5.x + pillow; CI never
runs it. Rerun from the repository root:
    python3 scripts/make_segmenter_fixtures.py
"""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import torch
import transformers
from PIL import Image
from safetensors.torch import save_file
from transformers import SamConfig, SamModel, SamProcessor
from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

FIXTURES = Path(__file__).resolve().parent.parent / "crates" / "svlm-perception" / "tests" / "fixtures"
OUT = FIXTURES / "sam"

# xyxy in photo pixels: inside, touching the right/bottom edges with fractions, the whole photo, a small one.
# Picked among seeds for a multimask choice that differs between boxes and no upscaled logit within 5e-5 of 0.
SEED = 25
BOXES = [[10, 5, 60, 50], [40.5, 10.25, 95, 63], [0, 0, 96, 64], [30, 20, 34, 26]]


# The `nn.Embedding` tables (learned tokens, prompt-type embeddings): unit-variance rows.
EMBEDDING = re.compile(r"(iou_token|mask_tokens|point_embed\.\d+|not_a_point_embed|no_mask_embed)\.weight$")


def scramble(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ("norm" in name or "layer_norm" in name) and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "rel_pos" in name or "pos_embed" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            elif "positional_embedding" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            elif EMBEDDING.search(name):
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel() if p.dim() > 1 else p.numel()
                if "upscale_conv" in name:
                    # ConvTranspose2d weight [in, out, k, k]; stride = k, so each output sees `in` inputs.
                    fan_in = p.shape[0]
                gain = 1.0
                if name.startswith("mask_decoder.") and "attn" in name:
                    # Larger gains make the two-way attention near one-hot: float32 then differs from float64
                    # by more than the 1e-4 tolerance.
                    gain = 1.0
                p.copy_(torch.randn(p.shape, generator=g) * (gain / fan_in**0.5))


def calibrate(model, inputs):
    """Rescales every hypernetwork MLP's last layer so the mask logits have std 3, and the IoU head's so its
    scores have std 1 (the multimask choice then differs between boxes)."""
    with torch.no_grad():
        out = model(**inputs)
        k = float(out.pred_masks.std()) / 3.0
        for mlp in model.mask_decoder.output_hypernetworks_mlps:
            mlp.proj_out.weight.div_(k)
            mlp.proj_out.bias.div_(k)
        head = model.mask_decoder.iou_prediction_head.proj_out
        k = float(out.iou_scores.std())
        head.weight.div_(k)
        head.bias.div_(k)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    config = SamConfig(
        vision_config=dict(
            hidden_size=32,
            output_channels=32,
            num_hidden_layers=4,
            num_attention_heads=2,
            image_size=80,
            patch_size=8,
            mlp_dim=64,
            window_size=4,
            global_attn_indexes=[1, 3],
            num_pos_feats=16,
        ),
        prompt_encoder_config=dict(hidden_size=32, image_size=80, patch_size=8, mask_input_channels=4),
        mask_decoder_config=dict(
            hidden_size=32,
            mlp_dim=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            attention_downsample_rate=2,
            num_multimask_outputs=3,
            iou_head_depth=3,
            iou_head_hidden_dim=16,
        ),
    )
    model = SamModel(config).eval()
    scramble(model, SEED)

    processor_config = {
        "image_processor_type": "SamImageProcessor",
        "do_resize": True,
        "size": {"longest_edge": 80},
        "resample": 2,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225],
        "do_pad": True,
        "pad_size": {"height": 80, "width": 80},
        "mask_size": {"longest_edge": 40},
        "mask_pad_size": {"height": 40, "width": 40},
        "do_convert_rgb": True,
    }
    image_processor = SamImageProcessorPil(
        **{k: v for k, v in processor_config.items() if k != "image_processor_type"}
    )
    processor = SamProcessor(image_processor=image_processor)

    photo = Image.open(FIXTURES / "chelsea_small.png").convert("RGB")
    inputs = processor(images=photo, input_boxes=[BOXES], return_tensors="pt")
    model_inputs = {"pixel_values": inputs["pixel_values"], "input_boxes": inputs["input_boxes"]}
    calibrate(model, model_inputs)

    model_dir = OUT / "tiny-sam"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model.save_pretrained(model_dir, safe_serialization=True)
    (model_dir / "preprocessor_config.json").write_text(json.dumps(processor_config, indent=2) + "\n")

    with torch.no_grad():
        out = model(**model_inputs, output_hidden_states=True)
        image_embeddings = model.get_image_embeddings(inputs["pixel_values"])
        sparse, dense = model.get_prompt_embeddings(input_boxes=inputs["input_boxes"])
    post_logits = processor.image_processor.post_process_masks(
        out.pred_masks, inputs["original_sizes"], inputs["reshaped_input_sizes"], binarize=False
    )[0]
    post_masks = processor.image_processor.post_process_masks(
        out.pred_masks, inputs["original_sizes"], inputs["reshaped_input_sizes"]
    )[0]

    model64 = SamModel(config).eval()
    model64.load_state_dict(model.state_dict())
    model64 = model64.double()
    with torch.no_grad():
        out64 = model64(
            pixel_values=inputs["pixel_values"].double(), input_boxes=inputs["input_boxes"].double()
        )

    best = out.iou_scores[0].argmax(dim=-1)
    tensors = {
        "pixel_values": inputs["pixel_values"].contiguous(),
        "input_boxes": inputs["input_boxes"].float().contiguous(),
        "original_size": torch.tensor(list(inputs["original_sizes"][0]), dtype=torch.int64),
        "reshaped_input_size": torch.tensor(list(inputs["reshaped_input_sizes"][0]), dtype=torch.int64),
        "image_embeddings": image_embeddings.contiguous(),
        "sparse_embeddings": sparse.contiguous(),
        "dense_embeddings": dense.contiguous(),
        "iou_scores": out.iou_scores.contiguous(),
        "pred_masks": out.pred_masks.contiguous(),
        "pred_masks_f64": out64.pred_masks.float().contiguous(),
        "post_processed_logits": post_logits[torch.arange(len(BOXES)), best].contiguous(),
        "post_processed_masks": post_masks.to(torch.uint8).contiguous(),
        "best_mask_index": best.to(torch.int64).contiguous(),
    }
    for i, h in enumerate(out.vision_hidden_states):
        tensors[f"vision_hidden_states.{i}"] = h.contiguous()
    save_file(tensors, OUT / "reference.safetensors", metadata={"transformers": transformers.__version__})

    masks = out.pred_masks
    print("pixel_values", tuple(inputs["pixel_values"].shape), "reshaped", inputs["reshaped_input_sizes"])
    print("input_boxes", inputs["input_boxes"].tolist())
    print("hidden states", [tuple(h.shape) for h in out.vision_hidden_states])
    print("mask logits mean", float(masks.mean()), "std", float(masks.std()))
    print("f32 vs f64 max |diff|", float((masks - out64.pred_masks.float()).abs().max()))
    print("iou", out.iou_scores.tolist())
    print("mask fill", post_masks.float().mean(dim=(-1, -2)).tolist())
    print("closest logit to 0 after upscaling", float(post_logits.abs().min()))
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"fixtures: {total / 1024:.0f} KiB in {OUT}")


if __name__ == "__main__":
    main()
