#!/usr/bin/env python3
"""Reference fixtures for crates/svlm-processor (HF parity tests). Needs torch, transformers 5.23, tokenizers,
Pillow, numpy, scikit-image; no network, no hub.

Builds small processor folders with `save_pretrained` -- an `Idefics3Processor` (SmolVLM's real chat template, a tiny
byte-level BPE with the Idefics3 special tokens), a `LlavaProcessor` (CLIP image processor at 224, llava-1.5-hf's
real chat template, a tiny BPE with a Llama-style BOS post-processor) and a `Qwen2_5_VLProcessor` (Qwen2-VL's chat
template, `Qwen2VLImageProcessorPil` with a small pixel budget, a tiny BPE with the Qwen special tokens; its cases in
`qwen2_vl/reference.json`) and a `Qwen3VLProcessor` (the image/text part of Qwen3-VL-Instruct's chat template,
Qwen3-VL's 16-pixel patches and 0.5 mean/std; `qwen3_vl/reference.json`) -- plus image-processor-only configs (CLIP and
SigLIP at small sizes, Idefics3 without splitting), and records what transformers computes for real photos
(scikit-image's astronaut and coffee, resized/cropped small) and a set of strings and chats: token ids, decoded text,
rendered and expanded prompts, pixel values (.npy, float32), pixel attention masks, tile grids.

Without torchvision installed, transformers 5 falls back to the PIL backend of each image processor
(`Idefics3ImageProcessorPil`, ...); the Rust crate reproduces that backend. This script refuses to run with
torchvision present so the fixtures always come from the PIL backend.

Run:  python3 scripts/make_processor_fixtures.py            (everything)
      python3 scripts/make_processor_fixtures.py qwen2_vl   (only the Qwen2-VL folder, from the committed images)
      python3 scripts/make_processor_fixtures.py qwen3_vl   (only the Qwen3-VL folder, likewise)
Writes: crates/svlm-processor/tests/fixtures/
"""

import json
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    CLIPImageProcessorPil,
    Idefics3ImageProcessorPil,
    Idefics3Processor,
    LlavaProcessor,
    PreTrainedTokenizerFast,
    Qwen2_5_VLProcessor,
    Qwen3VLProcessor,
    Qwen2VLImageProcessorPil,
    SiglipImageProcessorPil,
)
from transformers.utils import is_torchvision_available

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "crates" / "svlm-processor" / "tests" / "fixtures"

SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}"
    "{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

CORPUS = [
    "The red cube is about 1.2 metres to the left of the blue sphere.",
    "How far is the chair from the table? The chair is roughly 3 feet away.",
    "Is the lamp taller than the bookshelf? No, the lamp is shorter.",
    "An astronaut in a white suit stands in front of a flag; a cup of coffee sits on a saucer.",
    "Über die Brücke gehen 12 Menschen, café crème, naïve résumé — 東京 タワー 🙂",
    "Answer with a number in metres: 0.5, 1.75, 2-3 m, about 40 cm.",
    "What is the distance between the sofa and the TV? Around 2.4 m.",
    "def depth_to_points(depth, fx, fy): return [(u - cx) * z / fx for u in range(w)]",
] * 20

STRINGS = [
    "Hello world",
    "  leading and trailing spaces  ",
    "How far is the red cube from the blue sphere?",
    "Über café naïve — 東京 🙂 emoji 👩‍🚀",
    "numbers 3.14 and 1,000,000 m\nnew line\ttab",
    "<image> inline special <end_of_utterance> tokens",
    "",
]

IDEFICS3_SPECIALS = (
    ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<end_of_utterance>", "<fake_token_around_image>", "<image>",
     "<global-img>"]
    + [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
)
LLAVA_SPECIALS = ["<unk>", "<s>", "</s>", "<image>", "<pad>"]
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                 "<|image_pad|>", "<|video_pad|>"]

# Qwen2-VL-Instruct's chat template (Qwen2.5-VL-Instruct ships the same).
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# The image and text part of Qwen3-VL-Instruct's chat template (no default system turn; tools, reasoning and videos'
# timestamps left out).
QWEN3_VL_CHAT_TEMPLATE = (
    "{%- set image_count = namespace(value=0) %}{%- set video_count = namespace(value=0) %}"
    "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\n' }}"
    "{%- if message.content is string %}{{- message.content }}{%- else %}{%- for content in message.content %}"
    "{%- if content.type == 'image' or 'image' in content or 'image_url' in content %}"
    "{%- set image_count.value = image_count.value + 1 %}{%- if add_vision_id %}Picture {{ image_count.value }}: "
    "{%- endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif content.type == 'video' or 'video' in content %}{%- set video_count.value = video_count.value + 1 %}"
    "{%- if add_vision_id %}Video {{ video_count.value }}: {%- endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{%- elif 'text' in content %}{{- content.text }}{%- endif %}{%- endfor %}{%- endif %}"
    "{{- '<|im_end|>\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
)


def train_bpe(specials, vocab_size, bos_template=None):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    if bos_template is not None:
        bos_id = tok.token_to_id(bos_template)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos_template} $A", pair=f"{bos_template} $A {bos_template} $B",
            special_tokens=[(bos_template, bos_id)],
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def save_image(img, name):
    path = OUT / "images" / name
    img.save(path, optimize=True)
    return Image.open(path)  # what the Rust side decodes


def make_images():
    import skimage

    data = Path(skimage.__file__).parent / "data"
    (OUT / "images").mkdir(parents=True)
    astronaut = Image.open(data / "astronaut.png").convert("RGB").resize((128, 128), Image.Resampling.LANCZOS)
    coffee = Image.open(data / "coffee.png").convert("RGB")  # 600x400
    coffee_wide = coffee.crop((60, 120, 510, 270)).resize((150, 50), Image.Resampling.LANCZOS)
    camera = Image.open(data / "camera.png")  # 8-bit grayscale
    gray = camera.crop((200, 60, 296, 124)).resize((48, 32), Image.Resampling.BILINEAR)
    rgba = astronaut.crop((30, 20, 70, 50)).convert("RGBA")
    alpha = np.tile(np.linspace(0, 255, 40).astype(np.uint8), (30, 1))
    alpha[:5] = 255
    alpha[-3:] = 0
    rgba.putalpha(Image.fromarray(alpha))
    return {
        "astronaut.png": save_image(astronaut, "astronaut.png"),
        "coffee_wide.png": save_image(coffee_wide, "coffee_wide.png"),
        "gray.png": save_image(gray, "gray.png"),
        "rgba.png": save_image(rgba, "rgba.png"),
    }


def npy(rel, array):
    path = OUT / "reference" / rel
    np.save(path, array)
    return rel


def expanded_prompts(processor, prompts, images_nested):
    """The text after image-token expansion, through the processor's own replacement code."""
    kwargs = processor._merge_kwargs(tokenizer_init_kwargs=processor.tokenizer.init_kwargs)
    _, replacements = processor._process_images(images_nested, **kwargs["images_kwargs"])
    text, _ = processor.get_text_with_replacements(list(prompts), images_replacements=replacements)
    return text


def tokenizer_cases(tok):
    cases = []
    for s in STRINGS:
        with_special = tok(s, add_special_tokens=True)["input_ids"]
        without = tok(s, add_special_tokens=False)["input_ids"]
        cases.append({
            "text": s,
            "ids": with_special,
            "ids_no_special": without,
            "decoded": tok.decode(with_special, skip_special_tokens=False),
            "decoded_skip_special": tok.decode(with_special, skip_special_tokens=True),
        })
    return cases


def image_processor_cases(name, proc, images):
    cases = []
    for fname, img in images.items():
        extra = {"return_row_col_info": True} if isinstance(proc, Idefics3ImageProcessorPil) else {}
        out = proc(img, return_tensors="np", **extra)
        pv = np.asarray(out["pixel_values"], dtype=np.float32)
        case = {"image": fname, "pixel_values": npy(f"{name}_{fname[:-4]}.npy", pv), "shape": list(pv.shape)}
        if "pixel_attention_mask" in out:
            case["pixel_attention_mask"] = npy(f"{name}_{fname[:-4]}_mask.npy",
                                               np.asarray(out["pixel_attention_mask"]).astype(np.uint8))
        if "rows" in out:
            case["rows"] = [int(r) for r in np.asarray(out["rows"]).reshape(-1)]
            case["cols"] = [int(c) for c in np.asarray(out["cols"]).reshape(-1)]
        cases.append(case)
    return cases


def sampled_case(name, proc, img, fname, n_samples=1024):
    """Real-size configs give tensors too large to commit: keep the shape, the tile grid, sums and a fixed random
    sample of the values (same indices on the Rust side)."""
    extra = {"return_row_col_info": True} if isinstance(proc, Idefics3ImageProcessorPil) else {}
    out = proc(img, return_tensors="np", **extra)
    pv = np.asarray(out["pixel_values"], dtype=np.float32)
    flat = pv.reshape(-1)
    rng = np.random.default_rng(1234)
    idx = np.sort(rng.choice(flat.size, size=min(n_samples, flat.size), replace=False))
    case = {
        "config": name,
        "image": fname,
        "shape": list(pv.shape),
        "sum": float(flat.astype(np.float64).sum()),
        "abs_sum": float(np.abs(flat.astype(np.float64)).sum()),
        "sample_indices": [int(i) for i in idx],
        "sample_values": [float(v) for v in flat[idx]],
    }
    if "rows" in out:
        case["rows"] = [int(r) for r in np.asarray(out["rows"]).reshape(-1)]
        case["cols"] = [int(c) for c in np.asarray(out["cols"]).reshape(-1)]
    return case


def rust_trained_tokenizer_case():
    """The tokenizer the Rust crate trains and saves (examples/train_tokenizer.rs), as transformers loads it."""
    import subprocess

    from transformers import AutoTokenizer

    out_dir = OUT / "rust_trained_tokenizer"
    env = dict(os.environ)
    env.setdefault("CARGO_TARGET_DIR", "/tmp/svlm-processor-fixtures-target")
    subprocess.run(["cargo", "run", "-q", "-p", "svlm-processor", "--example", "train_tokenizer", "--", str(out_dir)],
                   cwd=ROOT, check=True, env=env)
    tok = AutoTokenizer.from_pretrained(out_dir)
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How far is the lamp?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "About 2 metres."}]}]
    prompt = tok.apply_chat_template(msgs, add_generation_prompt=False, tokenize=False)
    return {
        "vocab_size": len(tok),
        "pad_token_id": tok.pad_token_id,
        "eos_token_id": tok.eos_token_id,
        "bos_token_id": tok.bos_token_id,
        "messages": msgs,
        "prompt": prompt,
        "prompt_ids": tok(prompt, add_special_tokens=False)["input_ids"],
        "strings": [{"text": s, "ids": tok(s)["input_ids"]} for s in STRINGS],
    }


def chat_case(processor, name, messages, images, add_generation_prompt, store_pixels=True):
    prompt = processor.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=False)
    with_images = json.loads(json.dumps(messages))
    it = iter(images)
    for m in with_images:
        for part in m["content"]:
            if part["type"] == "image":
                part["image"] = next(it)
    out = processor.apply_chat_template(with_images, add_generation_prompt=add_generation_prompt, tokenize=True,
                                        return_dict=True, return_tensors="np")
    ids = [int(i) for i in np.asarray(out["input_ids"])[0]]
    # The 224x224 CLIP tensors are large; chats that skip them still compare shapes and ids, and the same images'
    # pixels are compared through the image-processor cases.
    # Same result through the plain call, and the add_special_tokens rule of apply_chat_template.
    bos = processor.tokenizer.bos_token
    add_special = not (bos is not None and prompt.startswith(bos))
    direct = processor(text=prompt, images=[images] if images else None, add_special_tokens=add_special,
                       return_tensors="np")
    assert [int(i) for i in direct["input_ids"][0]] == ids, name
    case = {
        "name": name,
        "messages": messages,
        "add_generation_prompt": add_generation_prompt,
        "images": [getattr(img, "fixture_name") for img in images],
        "prompt": prompt,
        "expanded_prompt": expanded_prompts(processor, [prompt], [images])[0] if images else prompt,
        "add_special_tokens": add_special,
        "input_ids": ids,
    }
    if images:
        pv = np.asarray(out["pixel_values"], dtype=np.float32)
        case["pixel_shape"] = list(pv.shape)
        if store_pixels:
            case["pixel_values"] = npy(f"{name}_pixels.npy", pv)
        if "pixel_attention_mask" in out:
            case["pixel_attention_mask"] = npy(f"{name}_mask.npy", np.asarray(out["pixel_attention_mask"]).astype(np.uint8))
    return case


def batch_case(processor, name, prompts, images_nested, padding_side, store_pixels=True):
    processor.tokenizer.padding_side = padding_side
    out = processor(text=prompts, images=images_nested, padding=True, return_tensors="np")
    processor.tokenizer.padding_side = "right"
    case = {
        "name": name,
        "prompts": prompts,
        "images": [[img.fixture_name for img in imgs] for imgs in images_nested],
        "padding_side": padding_side,
        "input_ids": np.asarray(out["input_ids"]).tolist(),
        "attention_mask": np.asarray(out["attention_mask"]).tolist(),
        "pixel_shape": list(np.asarray(out["pixel_values"]).shape),
    }
    if store_pixels:
        case["pixel_values"] = npy(f"{name}_pixels.npy", np.asarray(out["pixel_values"], dtype=np.float32))
    if "pixel_attention_mask" in out:
        case["pixel_attention_mask"] = npy(f"{name}_mask.npy", np.asarray(out["pixel_attention_mask"]).astype(np.uint8))
    return case


def main():
    assert transformers.__version__ == "5.23.0", transformers.__version__
    assert not is_torchvision_available(), "uninstall torchvision: the fixtures record the PIL backend"
    if OUT.exists():
        shutil.rmtree(OUT)
    (OUT / "reference").mkdir(parents=True)
    images = make_images()
    for name, img in images.items():
        img.fixture_name = name
    astronaut, coffee, gray, rgba = (images[k] for k in ["astronaut.png", "coffee_wide.png", "gray.png", "rgba.png"])

    # --- SmolVLM / Idefics3 -------------------------------------------------------------------------------
    smol_tok = PreTrainedTokenizerFast(
        tokenizer_object=train_bpe(IDEFICS3_SPECIALS, 700),
        bos_token="<|im_start|>", eos_token="<end_of_utterance>", pad_token="<|im_end|>", unk_token="<|endoftext|>",
    )
    idefics_ip = Idefics3ImageProcessorPil(
        size={"longest_edge": 64}, max_image_size={"longest_edge": 32}, resample=Image.Resampling.LANCZOS,
        do_image_splitting=True,
    )
    smol = Idefics3Processor(image_processor=idefics_ip, tokenizer=smol_tok, image_seq_len=4,
                             chat_template=SMOLVLM_CHAT_TEMPLATE)
    smol.save_pretrained(OUT / "smolvlm")

    # --- LLaVA (CLIP 224) ---------------------------------------------------------------------------------
    llava_tok = PreTrainedTokenizerFast(
        tokenizer_object=train_bpe(LLAVA_SPECIALS, 600, bos_template="<s>"),
        bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
    )
    clip_ip = CLIPImageProcessorPil(
        size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}, resample=Image.Resampling.BICUBIC,
        do_center_crop=True, image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
    )
    llava = LlavaProcessor(image_processor=clip_ip, tokenizer=llava_tok, patch_size=14,
                           vision_feature_select_strategy="default", num_additional_image_tokens=1,
                           chat_template=LLAVA_CHAT_TEMPLATE)
    llava.save_pretrained(OUT / "llava")

    # --- image-processor-only configs ---------------------------------------------------------------------
    small = {
        "clip_small": CLIPImageProcessorPil(size={"shortest_edge": 48}, crop_size={"height": 40, "width": 40},
                                            resample=Image.Resampling.BICUBIC, do_center_crop=True),
        "siglip_small": SiglipImageProcessorPil(size={"height": 32, "width": 48},
                                                resample=Image.Resampling.BILINEAR),
        "idefics3_nosplit": Idefics3ImageProcessorPil(size={"longest_edge": 64}, max_image_size={"longest_edge": 32},
                                                      do_image_splitting=False),
        "idefics3_split": idefics_ip,
    }
    image_cases = {}
    for name, proc in small.items():
        proc.save_pretrained(OUT / "image_processors" / name)
        image_cases[name] = image_processor_cases(name, proc, images)

    # --- chats ----------------------------------------------------------------------------------------------
    def user(text, n_images=0, images_first=True):
        parts = [{"type": "image"}] * n_images
        t = [{"type": "text", "text": text}]
        return {"role": "user", "content": parts + t if images_first else t + parts}

    def assistant(text):
        return {"role": "assistant", "content": [{"type": "text", "text": text}]}

    def system(text):
        return {"role": "system", "content": [{"type": "text", "text": text}]}

    smol_chats = [
        chat_case(smol, "smol_one_image", [user("How far is the flag from the astronaut?", 1)], [astronaut], True),
        chat_case(smol, "smol_two_images_multiturn",
                  [user("Compare these two images.", 2), assistant("The first shows an astronaut."),
                   user("Which one is wider?", 0)], [astronaut, coffee], True),
        chat_case(smol, "smol_text_only", [user("Über café — 東京 🙂")], [], False),
        chat_case(smol, "smol_image_after_text", [user("Describe:", 1, images_first=False)], [gray], True),
    ]
    llava_chats = [
        chat_case(llava, "llava_one_image", [user("What is in the image?", 1)], [astronaut], True),
        chat_case(llava, "llava_system_multiturn",
                  [system("You are a spatial reasoning assistant."), user("How wide is the cup?", 1),
                   assistant("About 10 cm."), user("And how tall?")], [coffee], True, store_pixels=False),
        chat_case(llava, "llava_rgba", [user("What do you see?", 1)], [rgba], False, store_pixels=False),
    ]
    batches = [
        batch_case(smol, "smol_batch_left", ["<image>Describe the scene.", "Short <image> caption"],
                   [[astronaut], [coffee]], "left"),
        batch_case(llava, "llava_batch_right", ["USER: <image>\nWhat? ASSISTANT:", "USER: <image>\nA longer question here? ASSISTANT:"],
                   [[gray], [astronaut]], "right", store_pixels=False),
    ]

    # Real-size configs: SmolVLM-256M/500M-Instruct's image processor and llava-1.5-hf's CLIP-336 one.
    real = {
        "smolvlm_real": Idefics3ImageProcessorPil(size={"longest_edge": 2048}, max_image_size={"longest_edge": 512},
                                                  resample=Image.Resampling.LANCZOS, do_image_splitting=True),
        "llava15_clip336": CLIPImageProcessorPil(
            size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}, resample=Image.Resampling.BICUBIC,
            do_center_crop=True, image_mean=[0.48145466, 0.4578275, 0.40821073],
            image_std=[0.26862954, 0.26130258, 0.27577711]),
    }
    sampled = []
    for name, proc in real.items():
        proc.save_pretrained(OUT / "image_processors" / name)
        for fname in ["astronaut.png", "coffee_wide.png"]:
            sampled.append(sampled_case(name, proc, images[fname], fname))

    reference = {
        "transformers": transformers.__version__,
        "image_backend": "pil",
        "tokenizers": {"smolvlm": tokenizer_cases(smol.tokenizer), "llava": tokenizer_cases(llava.tokenizer)},
        "chats": {"smolvlm": smol_chats, "llava": llava_chats},
        "batches": batches,
        "image_processors": image_cases,
        "special_ids": {
            "smolvlm": {t: smol.tokenizer.convert_tokens_to_ids(t) for t in
                        ["<image>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>", "<|im_start|>"]},
            "llava": {t: llava.tokenizer.convert_tokens_to_ids(t) for t in ["<image>", "<s>", "</s>", "<pad>"]},
        },
        "vocab_size": {"smolvlm": len(smol.tokenizer), "llava": len(llava.tokenizer)},
        "real_size_image_processors": sampled,
        "rust_trained_tokenizer": rust_trained_tokenizer_case(),
    }
    with open(OUT / "reference.json", "w") as f:
        json.dump(reference, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    make_qwen2_vl(images)
    make_qwen3_vl(images)
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT} ({total / 1e6:.2f} MB)")


def make_qwen2_vl(images):
    """A Qwen2.5-VL processor folder with a small pixel budget (patch 14, merge 2: 28-pixel steps, 4 to 16 merged
    patches per image) and what transformers gives for chats with several images of different sizes and a batch."""
    ip = Qwen2VLImageProcessorPil(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16)
    make_qwen_vl(images, "qwen2_vl", Qwen2_5_VLProcessor, ip, QWEN2_VL_CHAT_TEMPLATE, {})


def make_qwen3_vl(images):
    """A Qwen3-VL processor folder as the Qwen3-VL hub folders are laid out (`Qwen3VLProcessor`, the fast image
    processor's name, 16-pixel patches, mean and std 0.5) with a small pixel budget (32-pixel steps, 4 to 16 merged
    patches per image), and the same cases as Qwen2-VL's."""
    ip = Qwen2VLImageProcessorPil(patch_size=16, merge_size=2, temporal_patch_size=2, image_mean=[0.5, 0.5, 0.5],
                                  image_std=[0.5, 0.5, 0.5], min_pixels=32 * 32 * 4, max_pixels=32 * 32 * 16)
    make_qwen_vl(images, "qwen3_vl", Qwen3VLProcessor, ip, QWEN3_VL_CHAT_TEMPLATE,
                 {"image_processor_type": "Qwen2VLImageProcessorFast"})


def make_qwen_vl(images, name, processor_cls, ip, chat_template, config_overrides):
    """A processor folder of the Qwen-VL family and what transformers gives for chats with several images of
    different sizes and a batch (`<name>/reference.json`)."""
    d = OUT / name
    if d.exists():
        shutil.rmtree(d)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=train_bpe(QWEN_SPECIALS, 600),
        eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None, padding_side="left",
    )
    # The Qwen-VL video processors need torchvision, which these fixtures must not have: build without it.
    from transformers.processing_utils import ProcessorMixin

    check = ProcessorMixin.check_argument_for_proper_class
    ProcessorMixin.check_argument_for_proper_class = lambda self, name, arg: (
        None if arg is None else check(self, name, arg))
    proc = processor_cls(image_processor=ip, tokenizer=tok, chat_template=chat_template)
    ProcessorMixin.check_argument_for_proper_class = check
    # Saved as the hub folders are: tokenizer files, `preprocessor_config.json` naming the processor class,
    # `chat_template.json`.
    tok.save_pretrained(d)
    ip.save_pretrained(d)
    config = json.loads((d / "preprocessor_config.json").read_text())
    config["processor_class"] = processor_cls.__name__
    config.update(config_overrides)
    (d / "preprocessor_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (d / "chat_template.json").write_text(json.dumps({"chat_template": chat_template}, indent=2) + "\n")
    astronaut, coffee, gray, rgba = (images[k] for k in ["astronaut.png", "coffee_wide.png", "gray.png", "rgba.png"])

    def user(text, n_images=0):
        return {"role": "user", "content": [{"type": "image"}] * n_images + [{"type": "text", "text": text}]}

    def assistant(text):
        return {"role": "assistant", "content": [{"type": "text", "text": text}]}

    def case(case_name, messages, imgs, add_generation_prompt):
        prompt = proc.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=False)
        out = proc(text=[prompt], images=imgs or None, return_tensors="np")
        c = {"name": case_name, "messages": messages, "add_generation_prompt": add_generation_prompt,
             "images": [img.fixture_name for img in imgs], "prompt": prompt,
             "input_ids": [int(i) for i in out["input_ids"][0]]}
        if imgs:
            pv = np.asarray(out["pixel_values"], dtype=np.float32)
            np.save(d / f"{case_name}_pixels.npy", pv)
            c["pixel_values"] = f"{case_name}_pixels.npy"
            c["pixel_shape"] = list(pv.shape)
            c["image_grid_thw"] = np.asarray(out["image_grid_thw"]).tolist()
        return c

    chats = [
        # Qwen2-VL: astronaut 128x128 -> 112x112 (max_pixels), coffee 150x50 -> 140x56, gray 48x32 -> 84x56
        # (min_pixels).
        case("qwen_two_images", [user("How far is the astronaut from the cup?", 2)], [astronaut, coffee], True),
        case("qwen_multiturn", [user("Describe the image.", 1), assistant("A gray photo."), user("What is left of it?")],
             [gray], True),
        case("qwen_rgba", [user("What do you see?", 1)], [rgba], False),
        case("qwen_text_only", [user("Über café — 東京 🙂")], [], True),
    ]
    prompts = [c["prompt"] for c in chats[:2]]
    batch = proc(text=prompts, images=[astronaut, coffee, gray], padding=True, return_tensors="np")
    reference = {
        "transformers": transformers.__version__,
        "image_backend": "pil",
        "chats": chats,
        "batch": {"prompts": prompts, "images": ["astronaut.png", "coffee_wide.png", "gray.png"],
                  "input_ids": np.asarray(batch["input_ids"]).tolist(),
                  "attention_mask": np.asarray(batch["attention_mask"]).tolist(),
                  "image_grid_thw": np.asarray(batch["image_grid_thw"]).tolist(),
                  "pixel_shape": list(np.asarray(batch["pixel_values"]).shape)},
        "image_token_id": proc.image_token_id,
        "smart_resize": [[h, w, *transformers.models.qwen2_vl.image_processing_pil_qwen2_vl.smart_resize(
            h, w, ip.patch_size * ip.merge_size, ip.size["shortest_edge"], ip.size["longest_edge"])]
            for h, w in [(128, 128), (50, 150), (32, 48), (70, 42), (14, 14), (1000, 30), (98, 98), (42, 42)]],
    }
    with open(d / "reference.json", "w") as f:
        json.dump(reference, f, ensure_ascii=False, indent=1)
        f.write("\n")
    total = sum(p.stat().st_size for p in d.rglob("*") if p.is_file())
    print(f"wrote {d} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    import sys

    if sys.argv[1:] in (["qwen2_vl"], ["qwen3_vl"]):
        imgs = {}
        for name in ["astronaut.png", "coffee_wide.png", "gray.png", "rgba.png"]:
            imgs[name] = Image.open(OUT / "images" / name)
            imgs[name].fixture_name = name
        {"qwen2_vl": make_qwen2_vl, "qwen3_vl": make_qwen3_vl}[sys.argv[1]](imgs)
    else:
        main()
