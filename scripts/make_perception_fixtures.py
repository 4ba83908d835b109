#!/usr/bin/env python3
"""Reference fixtures for svlm-perception's parity tests (crates/svlm-perception/tests/parity.rs).

Writes a tiny random-weight metric `DepthAnythingForDepthEstimation` (DINOv2 backbone + DPT neck and head)
with `save_pretrained`, its `preprocessor_config.json` (the DPT processor settings of the
Depth-Anything-V2 checkpoints, with a smaller target size), a small real photo (scikit-image's `chelsea`,
downsized) as `chelsea_small.png`, and `reference.safetensors` with what transformers computes for it:

- `pixel_values`            the PIL-backend `DPTImageProcessorPil` output, [1, 3, H, W]
- `feature_maps.{i}`        the backbone's selected (layer-normed) hidden states, [1, 1 + h*w, C]
- `predicted_depth`         the model output at the processed size, [1, H, W]
- `predicted_depth_f64`     the same in float64 (stored as f32): the float32 noise floor of transformers itself
- `post_processed_depth`    `post_process_depth_estimation` resized to the photo, [h0, w0]
- `pixel_values_down`       the same photo preprocessed with `size` 42 x 42 (a downscale), [1, 3, 42, 56]
- `pixel_values_square`, `predicted_depth_square`: a second input (square, the default patch grid, so
  the position embeddings are used without interpolation) fed to the model directly.

Weights are redrawn larger than HF's init (std 0.02 makes every depth ~ max_depth / 2) so that mistakes show.
The patch grid of the photo (5 x 8) differs from the config's (4 x 4): the bicubic position-embedding
interpolation is exercised.

Needs torch + transformers 5.x + scikit-image + pillow; CI never runs it. Rerun from the repository root:
    python3 scripts/make_perception_fixtures.py
"""

import json
import shutil
from pathlib import Path

import numpy as np
import torch
import transformers
from PIL import Image
from safetensors.torch import save_file
from skimage import data as skdata
from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation
from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

OUT = Path(__file__).resolve().parent.parent / "crates" / "svlm-perception" / "tests" / "fixtures"


def scramble(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("lambda1"):
                p.copy_(0.5 + 0.2 * torch.randn(p.shape, generator=g))
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "position_embeddings" in name or "cls_token" in name or "mask_token" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel() if p.dim() > 1 else p.numel()
                if "neck.reassemble_stage" in name and "resize" in name and p.dim() == 4 and p.shape[-1] != 3:
                    # ConvTranspose2d weight [in, out, k, k]: fan-in is in * k * k / stride^2 = in.
                    fan_in = p.shape[0]
                p.copy_(torch.randn(p.shape, generator=g) * (1.5 / fan_in**0.5))


def processor_inputs_for_calibration():
    g = torch.Generator().manual_seed(3)
    return torch.randn((1, 3, 70, 112), generator=g)


def calibrate_head(model, pixel_values):
    """Rescales the last 1x1 conv so its output (the sigmoid's input) has mean 0 and std 1.5: the random
    neck makes large activations, and a saturated sigmoid would hide errors upstream."""
    seen = {}
    handle = model.head.conv3.register_forward_hook(lambda m, i, o: seen.__setitem__("out", o))
    with torch.no_grad():
        model(pixel_values)
        out = seen["out"]
        k = float(out.std()) / 1.5
        m = float(out.mean())
        model.head.conv3.weight.div_(k)
        model.head.conv3.bias.sub_(m).div_(k)
    handle.remove()


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    backbone = dict(
        model_type="dinov2",
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        mlp_ratio=4,
        image_size=56,
        patch_size=14,
        layerscale_value=1.0,
        out_indices=[1, 2, 3, 4],
        reshape_hidden_states=False,
        apply_layernorm=True,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        patch_size=14,
        reassemble_hidden_size=32,
        reassemble_factors=[4, 2, 1, 0.5],
        neck_hidden_sizes=[8, 16, 16, 32],
        fusion_hidden_size=16,
        head_hidden_size=8,
        head_in_index=-1,
        depth_estimation_type="metric",
        max_depth=20,
    )
    model = DepthAnythingForDepthEstimation(config).eval()
    scramble(model, 1)
    calibrate_head(model, processor_inputs_for_calibration())
    model_dir = OUT / "tiny-depth-anything"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model.save_pretrained(model_dir, safe_serialization=True)

    processor_config = {
        "image_processor_type": "DPTImageProcessor",
        "do_resize": True,
        "size": {"height": 70, "width": 70},
        "resample": 3,
        "keep_aspect_ratio": True,
        "ensure_multiple_of": 14,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225],
        "do_pad": False,
        "size_divisor": None,
    }
    (model_dir / "preprocessor_config.json").write_text(json.dumps(processor_config, indent=2) + "\n")
    processor = DPTImageProcessorPil(
        **{k: v for k, v in processor_config.items() if k != "image_processor_type"}
    )

    photo = Image.fromarray(skdata.chelsea()).resize((96, 64), Image.Resampling.BICUBIC)
    photo.save(OUT / "chelsea_small.png")
    photo = Image.open(OUT / "chelsea_small.png").convert("RGB")

    inputs = processor(images=photo, return_tensors="pt")
    pixel_values = inputs["pixel_values"]
    with torch.no_grad():
        backbone_out = model.backbone(pixel_values)
        out = model(pixel_values)
    post = processor.post_process_depth_estimation(out, target_sizes=[(photo.height, photo.width)])
    tensors = {
        "pixel_values": pixel_values.contiguous(),
        "predicted_depth": out.predicted_depth.contiguous(),
        "post_processed_depth": post[0]["predicted_depth"].contiguous(),
    }
    for i, fm in enumerate(backbone_out.feature_maps):
        tensors[f"feature_maps.{i}"] = fm.contiguous()

    # The same model in float64: transformers' own float32 rounding noise is of the order of the 1e-4 tolerance.
    model64 = DepthAnythingForDepthEstimation(config).eval()
    model64.load_state_dict(model.state_dict())
    model64 = model64.double()
    with torch.no_grad():
        tensors["predicted_depth_f64"] = model64(pixel_values.double()).predicted_depth.float().contiguous()

    # Downscaling (Pillow widens the bicubic support) to 42 x 63 -> 63 / 14 = 4.5 patches, which Python's
    # round() takes to 4 (half to even): 42 x 56.
    down = DPTImageProcessorPil(
        **{k: v for k, v in processor_config.items() if k != "image_processor_type"}
        | {"size": {"height": 42, "width": 42}}
    )
    tensors["pixel_values_down"] = down(images=photo, return_tensors="pt")["pixel_values"].contiguous()

    g = torch.Generator().manual_seed(7)
    square = torch.randn((1, 3, 56, 56), generator=g)
    with torch.no_grad():
        tensors["pixel_values_square"] = square
        tensors["predicted_depth_square"] = model(square).predicted_depth.contiguous()
    save_file(tensors, OUT / "reference.safetensors", metadata={"transformers": transformers.__version__})

    depth = out.predicted_depth
    print("pixel_values", tuple(pixel_values.shape))
    print("depth range", float(depth.min()), float(depth.max()), "std", float(depth.std()))
    print("feature maps", [tuple(f.shape) for f in backbone_out.feature_maps])
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"fixtures: {total / 1024:.0f} KiB in {OUT}")


if __name__ == "__main__":
    main()
