#!/usr/bin/env python3
"""Reference fixtures for svlm-perception's SAM 2 parity tests (crates/svlm-perception/tests/sam2_parity.rs).

Writes into crates/svlm-perception/tests/fixtures/sam2/:

- `tiny-sam2/`: a tiny random-weight `Sam2Model` (`save_pretrained`: Hiera backbone in four stages with query
  pooling, windowed and global attention and the windowed position embedding, FPN neck, prompt encoder, mask
  decoder with the high-resolution skip features and the object-score head) and the `Sam2ImageProcessor`'s
  `preprocessor_config.json` (128 x 128 input). The grids are 32, 16, 8 and 4 patches per side; windows of 6
  on the grid of 16 (and 3 after pooling, on 8) exercise the window padding; block 4 attends globally.
- `reference.safetensors`: what transformers computes for `chelsea_small.png` (96 x 64, resized to 128 x 128) and
  BOXES:
  - `pixel_values` [1, 3, 128, 128]: `Sam2Processor` (torchvision backend: uint8 antialiased bilinear resize to the
    fixed size, rescale and ImageNet normalization fused); `original_size` [2] (int64);
  - `input_boxes` [1, 4, 4]: the processor's boxes in the 128 x 128 frame;
  - `motorcycle_resized` [128, 128, 3] (u8): the torchvision resize of `middlebury/motorcycle.png` (371 x 250,
    downscaled in both directions, where torch's int16 weights and Pillow's differ);
  - `backbone_stage.{i}` [1, h, w, C]: the Hiera output at the end of each stage;
  - `fpn.{i}` [1, 32, h, w]: the neck's features, high to low resolution (32, 16, 8);
  - `image_embeddings.{i}`: what the mask decoder takes: `conv_s0(fpn.0)`, `conv_s1(fpn.1)` and
    `fpn.2 + no_memory_embedding`;
  - `sparse_embeddings` [1, 4, 3, 32] (two corners and the padding point), `dense_embeddings` [1, 32, 8, 8];
  - `iou_scores` [1, 4, 3], `pred_masks` [1, 4, 3, 32, 32] (multimask output, low-resolution logits),
    `object_score_logits` [1, 4, 1], and `pred_masks_f64_max_diff` (scalar: transformers' own float32 noise,
    the largest difference to the same model in float64);
  - `pred_masks_single` [1, 4, 1, 32, 32], `iou_scores_single` [1, 4, 1]: `multimask_output=False` (token 0's mask,
    or the best candidate where it is unstable: `dynamic_multimask_via_stability`);
  - `best_mask_index` [4] (int64): the multimask output with the highest predicted IoU, per box;
  - `post_processed_logits` [4, 64, 96]: `post_process_masks(binarize=False)` (one bilinear upscale to the photo)
    of each box's best mask, `post_processed_masks` [4, 3, 64, 96] (u8, `> 0.0`) of all three.

Weights are redrawn larger than HF's init (which leaves the position embeddings and `no_memory_embedding` at zero)
and the hypernetwork and IoU outputs rescaled, so the float32 comparison at 1e-4 is meaningful, the multimask choice
differs between boxes and thresholding at 0 splits every mask. Needs torch, torchvision (the processor's backend),
transformers 5.x and pillow; CI never runs it. Rerun from the repository root:
    python3 scripts/make_sam2_fixtures.py
"""

import re
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import transformers
from PIL import Image
from safetensors.torch import save_file
from transformers import Sam2Config, Sam2ImageProcessor, Sam2Model, Sam2Processor

FIXTURES = Path(__file__).resolve().parent.parent / "crates" / "svlm-perception" / "tests" / "fixtures"
OUT = FIXTURES / "sam2"

# xyxy in photo pixels: inside, touching the right/bottom edges with fractions, the whole photo, a small one.
BOXES = [[10, 5, 60, 50], [40.5, 10.25, 95, 63], [0, 0, 96, 64], [30, 20, 34, 26]]
# The first seed (from 0) that meets `acceptable`; `--search` finds it again.
SEED = 2

CONFIG = dict(
    vision_config=dict(
        backbone_config=dict(
            model_type="sam2_hiera_det_model",
            hidden_size=16,
            num_attention_heads=1,
            image_size=[128, 128],
            window_positional_embedding_background_size=[6, 5],
            blocks_per_stage=[1, 2, 3, 1],
            embed_dim_per_stage=[16, 32, 48, 64],
            num_attention_heads_per_stage=[1, 2, 2, 4],
            window_size_per_stage=[8, 6, 4, 2],
            global_attention_blocks=[4],
            mlp_ratio=2.0,
        ),
        backbone_channel_list=[64, 48, 32, 16],
        backbone_feature_sizes=[[32, 32], [16, 16], [8, 8]],
        fpn_hidden_size=32,
    ),
    prompt_encoder_config=dict(hidden_size=32, image_size=128, patch_size=16, mask_input_channels=4),
    mask_decoder_config=dict(
        hidden_size=32, mlp_dim=64, num_hidden_layers=2, num_attention_heads=2, iou_head_hidden_dim=16
    ),
)

# Learned tokens and prompt-type embeddings: unit-variance rows.
EMBEDDING = re.compile(
    r"(iou_token|mask_tokens|obj_score_token|point_embed|not_a_point_embed|no_mask_embed)\.weight$"
    r"|^no_memory_embedding$"
)


def scramble(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "pos_embed" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            elif EMBEDDING.search(name):
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel() if p.dim() > 1 else p.numel()
                if "upscale_conv" in name:
                    # ConvTranspose2d weight [in, out, k, k]; stride = k, so each output sees `in` inputs.
                    fan_in = p.shape[0]
                p.copy_(torch.randn(p.shape, generator=g) / fan_in**0.5)
        # The random-Fourier matrices are buffers; the box corners and the image grid use different ones.
        for name, b in model.named_buffers():
            if name.endswith("positional_embedding"):
                b.copy_(torch.randn(b.shape, generator=g))


def calibrate(model, inputs):
    """Rescales every hypernetwork MLP's last layer so the mask logits have std 3. The IoU head's logits (before
    the sigmoid) are centred per candidate over the boxes and scaled to std 1.5: its random biases would otherwise
    pick the same candidate for every box."""
    with torch.no_grad():
        out = model(**inputs)
        k = float(out.pred_masks.std()) / 3.0
        for mlp in model.mask_decoder.output_hypernetworks_mlps:
            mlp.proj_out.weight.div_(k)
            mlp.proj_out.bias.div_(k)
        head = model.mask_decoder.iou_prediction_head.proj_out
        logits = torch.logit(out.iou_scores[0].double(), eps=1e-12)  # [boxes, candidates 1..3]
        head.bias[1:] -= logits.mean(dim=0).float()
        k = float((logits - logits.mean(dim=0)).std()) / 1.5
        head.weight.div_(k)
        head.bias.div_(k)


def build(seed, model_inputs):
    torch.manual_seed(0)
    model = Sam2Model(Sam2Config(**CONFIG)).eval()
    scramble(model, seed)
    calibrate(model, model_inputs)
    return model


def run(model, processor, inputs, model_inputs):
    with torch.no_grad():
        out = model(**model_inputs, multimask_output=True)
    logits = processor.post_process_masks(out.pred_masks, inputs["original_sizes"], binarize=False)[0]
    return out, logits


def acceptable(out, logits):
    best = out.iou_scores[0].argmax(dim=-1)
    chosen = logits[torch.arange(len(BOXES)), best]
    fill = (chosen > 0).float().mean(dim=(-1, -2))
    # The tests compare the chosen masks pixel for pixel: no chosen logit may sit within float32 noise of 0.
    return (
        len(set(best.tolist())) > 1
        and float(chosen.abs().min()) > 5e-5
        and bool(((fill > 0.02) & (fill < 0.98)).all())
    )


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    image_processor = Sam2ImageProcessor(size={"height": 128, "width": 128}, mask_size={"height": 32, "width": 32})
    processor = Sam2Processor(image_processor=image_processor)
    photo = Image.open(FIXTURES / "chelsea_small.png").convert("RGB")
    inputs = processor(images=photo, input_boxes=[BOXES], return_tensors="pt")
    model_inputs = {"pixel_values": inputs["pixel_values"], "input_boxes": inputs["input_boxes"]}

    if "--search" in sys.argv:
        for seed in range(200):
            model = build(seed, model_inputs)
            out, logits = run(model, processor, inputs, model_inputs)
            if acceptable(out, logits):
                print("first acceptable seed:", seed)
                return
            best = out.iou_scores[0].argmax(dim=-1)
            chosen = logits[torch.arange(len(BOXES)), best]
            fill = (chosen > 0).float().mean(dim=(-1, -2)).tolist()
            print(seed, best.tolist(), f"{float(chosen.abs().min()):.1e}", [round(f, 3) for f in fill])
        raise SystemExit("no acceptable seed below 200")

    model = build(SEED, model_inputs)
    out, post_logits = run(model, processor, inputs, model_inputs)
    if not acceptable(out, post_logits):
        raise SystemExit(f"seed {SEED} no longer gives a usable fixture: rerun with --search")
    post_masks = processor.post_process_masks(out.pred_masks, inputs["original_sizes"])[0]

    model_dir = OUT / "tiny-sam2"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model.save_pretrained(model_dir, safe_serialization=True)
    image_processor.save_pretrained(model_dir)

    pixel_values = inputs["pixel_values"]
    with torch.no_grad():
        backbone = model.vision_encoder.backbone
        stages = backbone(pixel_values).intermediate_hidden_states
        vision = model.vision_encoder(pixel_values)
        image_embeddings = model.get_image_embeddings(pixel_values)
        sparse, dense = model.get_prompt_embeddings(input_boxes=inputs["input_boxes"])

    model64 = Sam2Model(Sam2Config(**CONFIG)).eval()
    model64.load_state_dict(model.state_dict())
    model64 = model64.double()
    with torch.no_grad():
        out64 = model64(pixel_values=pixel_values.double(), input_boxes=inputs["input_boxes"].double())
    noise = (out.pred_masks.double() - out64.pred_masks).abs().max()
    with torch.no_grad():
        single = model(**model_inputs, multimask_output=False)

    motorcycle = np.array(Image.open(FIXTURES / "middlebury" / "motorcycle.png").convert("RGB"))
    motorcycle = torch.from_numpy(motorcycle).permute(2, 0, 1)[None].contiguous()
    size = image_processor.size
    motorcycle = image_processor.resize(motorcycle, size=size, resample=image_processor.resample)

    best = out.iou_scores[0].argmax(dim=-1)
    tensors = {
        "pixel_values": pixel_values.contiguous(),
        "original_size": torch.tensor(list(inputs["original_sizes"][0]), dtype=torch.int64),
        "input_boxes": inputs["input_boxes"].float().contiguous(),
        "motorcycle_resized": motorcycle[0].permute(1, 2, 0).contiguous(),
        "sparse_embeddings": sparse.contiguous(),
        "dense_embeddings": dense.contiguous(),
        "iou_scores": out.iou_scores.contiguous(),
        "pred_masks": out.pred_masks.contiguous(),
        "object_score_logits": out.object_score_logits.contiguous(),
        "pred_masks_single": single.pred_masks.contiguous(),
        "iou_scores_single": single.iou_scores.contiguous(),
        "pred_masks_f64_max_diff": noise.float().reshape(1),
        "best_mask_index": best.to(torch.int64).contiguous(),
        "post_processed_logits": post_logits[torch.arange(len(BOXES)), best].contiguous(),
        "post_processed_masks": post_masks.to(torch.uint8).contiguous(),
    }
    for i, h in enumerate(stages):
        tensors[f"backbone_stage.{i}"] = h.contiguous()
    for i, f in enumerate(vision.fpn_hidden_states):
        tensors[f"fpn.{i}"] = f.contiguous()
    for i, e in enumerate(image_embeddings):
        tensors[f"image_embeddings.{i}"] = e.contiguous()
    save_file(tensors, OUT / "reference.safetensors", metadata={"transformers": transformers.__version__})

    masks = out.pred_masks
    print("pixel_values", tuple(pixel_values.shape), "original", inputs["original_sizes"])
    print("input_boxes", inputs["input_boxes"].tolist())
    print("stages", [tuple(h.shape) for h in stages], "fpn", [tuple(f.shape) for f in vision.fpn_hidden_states])
    print("mask logits mean", float(masks.mean()), "std", float(masks.std()))
    print("f32 vs f64 max |diff|", float(noise))
    print("iou", out.iou_scores.tolist(), "best", best.tolist())
    print("object scores", out.object_score_logits.flatten().tolist())
    fallback = (single.pred_masks[0, :, 0] == out.pred_masks[0, torch.arange(len(BOXES)), best]).flatten(1).all(1)
    print("single-mask output falls back to the best candidate (token 0 unstable), per box", fallback.tolist())
    print("mask fill", post_masks.float().mean(dim=(-1, -2)).tolist())
    print("closest logit to 0 after upscaling", float(post_logits.abs().min()))
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"fixtures: {total / 1024:.0f} KiB in {OUT}")


if __name__ == "__main__":
    main()
