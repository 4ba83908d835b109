#!/usr/bin/env python3
"""Reference fixtures for svlm-perception's Depth Pro parity tests (crates/svlm-perception/tests/depth_pro_parity.rs).

Writes into crates/svlm-perception/tests/fixtures/tiny-depth-pro/:

- `config.json`, `model.safetensors`: a tiny random-weight `DepthProForDepthEstimation` with the FoV head
  (`use_fov_model=True`), written by `save_pretrained`. Its three DINOv2 encoders work on 16 x 16 patches
  (`patch_size` 16, so the processed image is 64 x 64): the patch and image encoders with 4 px tokens
  (a 4 x 4 grid, as the real model's 24 x 24), the FoV encoder with 8 px tokens (a 2 x 2 grid, resampled to
  the 4 x 4 base). The 64 px image is cut into 1 + 9 + 25 overlapping patches as the real 1536 px one into
  1 + 9 + 25 of 384 px; merging removes 1 token of overlap (the real model 3 and 6) and the merged 1.0-scale
  maps (20 - 8 = 12 tokens) are resampled to 16, so the padding and interpolation of the merge are exercised.
  Two intermediate hooks (layers 2 and 1) as the real model's (11 and 5), and the last intermediate's dims equal
  `fusion_hidden_size` (its projection is the identity, as in the real model).
- `preprocessor_config.json`: `DepthProImageProcessor` (torchvision backend: rescale and normalize first, then
  a bilinear resize without antialiasing) to 64 x 64.
- `reference.safetensors`: what transformers computes for `chelsea_small.png` (96 x 64):
  - `pixel_values` [1, 3, 64, 64];
  - `encoder_features.{i}` (`DepthProEncoder`: image features, the three scaled-image features low to high
    resolution, the two intermediate features);
  - `neck_features.{i}` (`DepthProModel.features`, what the fusion stage reads) and `fused.{i}` (the fusion
    stage's outputs, coarse to fine);
  - `predicted_depth` [1, 256, 256] (inverse depth), `field_of_view` [1] (degrees);
  - `post_processed_depth` [64, 96] and `focal_length` [1]: `post_process_depth_estimation` at the photo's size;
  - `predicted_depth_f64`, `field_of_view_f64`: the same model in float64 (stored as f32), transformers' own
    float32 noise floor.
  Maps larger than 32 x 32 (the finest neck and fused maps, the f64 depth) are stored at every third pixel in
  each direction (`[..., ::3, ::3]`, odd stride so both phases of the stride-2 transposed convolutions are
  checked) to keep the fixture small; the tests subsample their output the same way.

HF's init (kaiming for convolutions, zero biases, 0.02 for the encoders) makes a ReLU head output mostly zeros
(infinite depth after post-processing), so weights are redrawn (biases, layer norms and embeddings too) and the
last convolutions of the depth and FoV heads are calibrated on the photo: inverse depth about 1.5 +- 0.3, a field
of view of 50 degrees plus or minus a photo-dependent 8.

Needs torch + transformers 5.x + torchvision (`DepthProImageProcessor` is torchvision-backed; a `pip install
--no-deps --target DIR torchvision` put on PYTHONPATH is enough) + pillow; CI never runs it. Rerun from the
repository root (the photo is written by `make_perception_fixtures.py`):
    python3 scripts/make_depth_pro_fixtures.py
"""

import json
import shutil
from pathlib import Path

import torch
import transformers
from PIL import Image
from safetensors.torch import save_file
from torch import nn
from transformers import DepthProConfig, DepthProForDepthEstimation, DepthProImageProcessor

FIXTURES = Path(__file__).resolve().parent.parent / "crates" / "svlm-perception" / "tests" / "fixtures"
OUT = FIXTURES / "tiny-depth-pro"
SEED = 1


def dinov2(hidden, layers, heads, patch):
    return dict(
        model_type="dinov2",
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        mlp_ratio=2,
        patch_size=patch,
        image_size=16,
        layerscale_value=1.0,
    )


def tiny_config():
    return DepthProConfig(
        patch_size=16,
        fusion_hidden_size=8,
        intermediate_hook_ids=[2, 1],
        intermediate_feature_dims=[12, 8],
        scaled_images_ratios=[0.25, 0.5, 1.0],
        scaled_images_overlap_ratios=[0.0, 0.5, 0.25],
        scaled_images_feature_dims=[16, 12, 8],
        merge_padding_value=3,
        use_batch_norm_in_fusion_residual=False,
        use_bias_in_fusion_residual=True,
        use_fov_model=True,
        num_fov_head_layers=2,
        patch_model_config=dinov2(16, 3, 2, 4),
        image_model_config=dinov2(24, 2, 2, 4),
        fov_model_config=dinov2(16, 2, 2, 8),
    )


def scramble(model, seed):
    """Weights with unit-scale activations: He-like weights by fan-in, biases 0.1, layer norms 1 +- 0.2."""
    g = torch.Generator().manual_seed(seed)

    def randn(shape):
        return torch.randn(shape, generator=g)

    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, nn.ConvTranspose2d):
                # weight [in, out, k, k] with stride = k: each output sees `in` inputs.
                module.weight.copy_(randn(module.weight.shape) * (1.5 / module.weight.shape[0] ** 0.5))
            elif isinstance(module, (nn.Conv2d, nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.copy_(randn(module.weight.shape) * (1.5 / fan_in**0.5))
            elif isinstance(module, nn.LayerNorm):
                module.weight.copy_(1.0 + 0.2 * randn(module.weight.shape))
            else:
                continue
            if getattr(module, "bias", None) is not None:
                module.bias.copy_(0.1 * randn(module.bias.shape))
        for name, p in model.named_parameters():
            if name.endswith("lambda1"):
                p.copy_(0.5 + 0.2 * randn(p.shape))
            elif name.endswith(("position_embeddings", "cls_token", "mask_token")):
                p.copy_(0.5 * randn(p.shape))


def calibrate(model, pixel_values):
    """Rescales the depth head's last convolution to an output of mean 1.5, std 0.3 (so its ReLU keeps nearly
    every pixel and depths are finite), and the FoV head's last one to 50 degrees plus or minus 8 that come
    from its input (so the FoV still depends on everything upstream)."""
    seen = {}
    depth_conv = model.head.layers[4]
    fov_conv = model.fov_model.head.layers[-1]
    hooks = [
        depth_conv.register_forward_hook(lambda m, i, o: seen.__setitem__("depth", o)),
        fov_conv.register_forward_hook(lambda m, i, o: seen.__setitem__("fov", (i[0], o))),
    ]
    with torch.no_grad():
        model(pixel_values)
        out = seen["depth"]
        k = float(out.std()) / 0.3
        depth_conv.weight.div_(k)
        depth_conv.bias.sub_(float(out.mean())).div_(k).add_(1.5)
        _, fov_out = seen["fov"]
        pre = float(fov_out.flatten()[0] - fov_conv.bias[0])
        fov_conv.weight.mul_(8.0 / abs(pre))
        fov_conv.bias.fill_(50.0)
    for h in hooks:
        h.remove()


def every_third(t):
    return t[..., ::3, ::3].contiguous()


def main():
    torch.manual_seed(0)
    config = tiny_config()
    model = DepthProForDepthEstimation(config).eval()
    scramble(model, SEED)

    if OUT.exists():
        shutil.rmtree(OUT)
    processor = DepthProImageProcessor(size={"height": 64, "width": 64})
    photo = Image.open(FIXTURES / "chelsea_small.png").convert("RGB")
    pixel_values = processor(images=photo, return_tensors="pt")["pixel_values"]
    calibrate(model, pixel_values)
    model.save_pretrained(OUT, safe_serialization=True)
    processor.save_pretrained(OUT)

    with torch.no_grad():
        encoder_features = [f.clone() for f in model.depth_pro.encoder(pixel_values).features]
        neck_features = model.depth_pro(pixel_values).features
        fused = model.fusion_stage(neck_features)
        out = model(pixel_values)
    post = processor.post_process_depth_estimation(out, target_sizes=[(photo.height, photo.width)])[0]

    tensors = {
        "pixel_values": pixel_values.contiguous(),
        "predicted_depth": out.predicted_depth.contiguous(),
        "field_of_view": out.field_of_view.contiguous(),
        "post_processed_depth": post["predicted_depth"].contiguous(),
        "focal_length": post["focal_length"].reshape(1).contiguous(),
    }
    for i, f in enumerate(encoder_features):
        tensors[f"encoder_features.{i}"] = f.contiguous()
    for name, maps in (("neck_features", neck_features), ("fused", fused)):
        for i, f in enumerate(maps):
            tensors[f"{name}.{i}"] = every_third(f) if f.shape[-1] > 32 else f.contiguous()

    model64 = DepthProForDepthEstimation(config).eval()
    model64.load_state_dict(model.state_dict())
    model64 = model64.double()
    with torch.no_grad():
        out64 = model64(pixel_values.double())
    tensors["predicted_depth_f64"] = every_third(out64.predicted_depth.float())
    tensors["field_of_view_f64"] = out64.field_of_view.float().contiguous()
    save_file(tensors, OUT / "reference.safetensors", metadata={"transformers": transformers.__version__})

    depth = out.predicted_depth
    print("pixel_values", tuple(pixel_values.shape))
    print("encoder features", [tuple(f.shape) for f in encoder_features])
    print("neck features", [tuple(f.shape) for f in neck_features])
    print("fused", [tuple(f.shape) for f in fused])
    print("inverse depth", tuple(depth.shape), float(depth.min()), float(depth.max()), "zeros", int((depth == 0).sum()))
    print("fov", out.field_of_view.tolist(), "f64", out64.field_of_view.tolist(), "focal", float(post["focal_length"]))
    d = post["predicted_depth"]
    print("metric depth", float(d.min()), float(d.max()))
    print("f32 vs f64 depth", float((out.predicted_depth - out64.predicted_depth.float()).abs().max()))
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"fixture: {total / 1024:.0f} KiB in {OUT}")
    print(json.dumps(json.loads((OUT / "preprocessor_config.json").read_text())))


if __name__ == "__main__":
    main()
