#!/usr/bin/env python3
"""Reference fixtures for svlm-model's parity tests (crates/svlm-model/tests/parity.rs).

Writes tiny random-weight checkpoints of LlamaForCausalLM (GQA, llama3 rope scaling), Qwen2ForCausalLM (q/k/v bias),
Idefics3ForConditionalGeneration (SigLIP tower, pixel shuffle, padded tiles),
LlavaForConditionalGeneration (CLIP tower, vision_feature_layer=-2; SigLIP tower, strategy full),
Qwen2_5_VLForConditionalGeneration (window attention, RMSNorm + gated MLP tower), Qwen2VLForConditionalGeneration
(LayerNorm + GELU tower) and Qwen3VLForConditionalGeneration (learned positions resampled per image, DeepStack, a
Qwen3 decoder with interleaved multimodal rotary positions), all with images of different sizes, with `save_pretrained`,
and next to each a `reference.safetensors` holding the inputs and what transformers computes:
logits, per-layer hidden states, image features, 10 greedy tokens, and for one training step
the loss and every parameter's gradient (`grad.<parameter name>`).

Needs torch + transformers (5.x); CI never runs it. Rerun from the repository root:
    python3 scripts/make_fixtures.py
"""

import json
import shutil
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file
from transformers import (
    CLIPVisionConfig,
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    LlamaConfig,
    LlamaForCausalLM,
    LlavaConfig,
    LlavaForConditionalGeneration,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
    SiglipVisionConfig,
)

OUT = Path(__file__).resolve().parent.parent / "crates" / "svlm-model" / "tests" / "fixtures"
VOCAB = 128
IMAGE_TOKEN = VOCAB - 1


def text_config(**extra):
    cfg = dict(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        rms_norm_eps=1e-5,
        max_position_embeddings=128,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    cfg.update(extra)
    return cfg


def scramble(model, seed):
    """HF's init (std 0.02) gives near-uniform logits; larger random weights make every
    mistake visible and greedy decoding unambiguous."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ("norm" in name or "ln_q" in name) and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias") or "class_embedding" in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "embed" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                fan_in = p.shape[1] if p.dim() == 2 else p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in**0.5)


def save(model, name, tensors, extra_json):
    d = OUT / name
    if d.exists():
        shutil.rmtree(d)
    model.save_pretrained(d, safe_serialization=True)
    tensors = {k: v.detach().contiguous().clone() for k, v in tensors.items()}
    save_file(tensors, str(d / "reference.safetensors"))
    (d / "reference.json").write_text(json.dumps(extra_json, indent=1))
    size = sum(f.stat().st_size for f in d.iterdir())
    print(f"{name}: {size / 1024:.0f} KiB, {len(tensors)} reference tensors")


def training_step(model, inputs, labels):
    model.zero_grad()
    out = model(**inputs, labels=labels)
    out.loss.backward()
    grads = {}
    for name, p in model.named_parameters():
        grads["grad." + name] = p.grad if p.grad is not None else torch.zeros_like(p)
    return out.loss.detach().reshape(1), grads


def hidden(out, prefix="hidden_states"):
    return {f"{prefix}.{i}": h for i, h in enumerate(out.hidden_states)}


def image_features(out):
    """transformers 5 returns the projected features as `pooler_output`, one tensor per sample."""
    feats = out.pooler_output if hasattr(out, "pooler_output") else out
    if isinstance(feats, (list, tuple)):
        feats = torch.cat([f.reshape(-1, f.shape[-1]) for f in feats])
    return feats


def greedy(model, **kw):
    gen = model.generate(**kw, max_new_tokens=10, do_sample=False, eos_token_id=None, pad_token_id=0)
    return gen[:, kw["input_ids"].shape[1]:]


def make_llama():
    torch.manual_seed(1)
    cfg = LlamaConfig(
        **text_config(
            rope_theta=10000.0,
            rope_scaling=dict(
                rope_type="llama3",
                factor=8.0,
                low_freq_factor=1.0,
                high_freq_factor=4.0,
                original_max_position_embeddings=32,
            ),
        )
    )
    cfg._attn_implementation = "eager"
    decoder_fixture("llama", LlamaForCausalLM(cfg).eval(), 11)


def make_qwen2():
    """A Qwen2 decoder: bias on q/k/v but not on o (svlm reads it as a Llama with those biases)."""
    torch.manual_seed(2)
    cfg = Qwen2Config(**text_config(rope_theta=10000.0))
    cfg._attn_implementation = "eager"
    decoder_fixture("qwen2", Qwen2ForCausalLM(cfg).eval(), 12)


def decoder_fixture(name, model, seed):
    scramble(model, seed)
    ids = torch.randint(3, VOCAB - 1, (2, 12))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # left padding in the second row
    ids[1, :3] = 0
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        tokens = greedy(model, input_ids=ids[:1], attention_mask=mask[:1])
        batch_tokens = greedy(model, input_ids=ids, attention_mask=mask)
    labels = ids.masked_fill(mask == 0, -100)
    loss, grads = training_step(model, dict(input_ids=ids, attention_mask=mask), labels)
    tensors = dict(input_ids=ids, attention_mask=mask, labels=labels, logits=out.logits,
                   greedy_tokens=tokens, batch_greedy_tokens=batch_tokens, loss=loss)
    tensors.update(hidden(out))
    tensors.update(grads)
    save(model, name, tensors, {"transformers": transformers.__version__, "torch": torch.__version__})


def image_prompt(n_images, tokens_per_image, text_lens, gen):
    ids = []
    for i in range(n_images):
        ids += torch.randint(3, IMAGE_TOKEN, (text_lens[i],), generator=gen).tolist()
        ids += [IMAGE_TOKEN] * tokens_per_image
    ids += torch.randint(3, IMAGE_TOKEN, (text_lens[-1],), generator=gen).tolist()
    return ids


def left_pad(rows):
    n = max(len(r) for r in rows)
    ids = torch.tensor([[0] * (n - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (n - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


def make_idefics3():
    torch.manual_seed(2)
    cfg = Idefics3Config(
        text_config=text_config(model_type="llama", rope_theta=10000.0),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=4,
            num_channels=3,
        ),
        scale_factor=2,
        image_token_id=IMAGE_TOKEN,
        tie_word_embeddings=False,
    )
    cfg._attn_implementation = "eager"
    cfg.vision_config._attn_implementation = "eager"
    cfg.text_config._attn_implementation = "eager"
    model = Idefics3ForConditionalGeneration(cfg).eval()
    scramble(model, 12)
    per_image = (32 // 4) ** 2 // 4
    g = torch.Generator().manual_seed(5)
    # Sample 0: two tiles, the second only half real (bottom padded); sample 1: one tile + one
    # all-zero padding image.
    pixels = torch.randn(2, 2, 3, 32, 32, generator=g)
    pmask = torch.ones(2, 2, 32, 32, dtype=torch.bool)
    pmask[0, 1, 16:, :] = False
    pmask[0, 1, :, 20:] = False
    pixels[0, 1][:, ~pmask[0, 1]] = 0.0
    pixels[1, 1] = 0.0
    pmask[1, 1] = False
    rows = [image_prompt(2, per_image, [3, 2, 4], g), image_prompt(1, per_image, [2, 3], g)]
    ids, mask = left_pad(rows)
    inputs = dict(input_ids=ids, attention_mask=mask, pixel_values=pixels, pixel_attention_mask=pmask)
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True)
        feats = image_features(model.model.get_image_features(pixel_values=pixels, pixel_attention_mask=pmask))
        one = dict(input_ids=ids[1:, mask[1].argmax():], attention_mask=mask[1:, mask[1].argmax():],
                   pixel_values=pixels[1:, :1], pixel_attention_mask=pmask[1:, :1])
        tokens = greedy(model, **one)
    labels = ids.masked_fill((mask == 0) | (ids == IMAGE_TOKEN), -100)
    loss, grads = training_step(model, inputs, labels)
    tensors = dict(input_ids=ids, attention_mask=mask, labels=labels, pixel_values=pixels,
                   pixel_attention_mask=pmask.long(), logits=out.logits, image_features=feats.reshape(-1, per_image, 64),
                   greedy_input_ids=one["input_ids"], greedy_tokens=tokens, loss=loss)
    tensors.update(hidden(out))
    tensors.update(grads)
    save(model, "idefics3", tensors, {"transformers": transformers.__version__, "torch": torch.__version__})


# The tiny vision tower both LLaVA fixtures share (CLIP adds its projection and activation).
LLAVA_TOWER = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32,
                   patch_size=8)


def make_llava():
    vision = CLIPVisionConfig(**LLAVA_TOWER, projection_dim=32, hidden_act="quick_gelu")
    llava_fixture("llava", vision, feature_layer=-2, strategy="default")


def make_llava_siglip():
    """LLaVA with a SigLIP tower (no class token, every patch kept, last layer)."""
    vision = SiglipVisionConfig(**LLAVA_TOWER)
    llava_fixture("llava_siglip", vision, feature_layer=-1, strategy="full")


def llava_fixture(name, vision, feature_layer, strategy):
    torch.manual_seed(3)
    cfg = LlavaConfig(
        vision_config=vision.to_dict(),
        text_config=text_config(model_type="llama", rope_theta=10000.0),
        image_token_index=IMAGE_TOKEN,
        vision_feature_layer=feature_layer,
        vision_feature_select_strategy=strategy,
        projector_hidden_act="gelu",
        tie_word_embeddings=False,
    )
    cfg._attn_implementation = "eager"
    cfg.vision_config._attn_implementation = "eager"
    cfg.text_config._attn_implementation = "eager"
    model = LlavaForConditionalGeneration(cfg).eval()
    scramble(model, 13)
    per_image = (32 // 8) ** 2
    g = torch.Generator().manual_seed(6)
    pixels = torch.randn(2, 3, 32, 32, generator=g)
    rows = [image_prompt(1, per_image, [3, 5], g), image_prompt(1, per_image, [2, 2], g)]
    ids, mask = left_pad(rows)
    inputs = dict(input_ids=ids, attention_mask=mask, pixel_values=pixels)
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True)
        feats = model.model.get_image_features(
            pixel_values=pixels,
            vision_feature_layer=cfg.vision_feature_layer,
            vision_feature_select_strategy=cfg.vision_feature_select_strategy,
        )
        feats = image_features(feats)
        one = dict(input_ids=ids[:1], attention_mask=mask[:1], pixel_values=pixels[:1])
        tokens = greedy(model, **one)
    labels = ids.masked_fill((mask == 0) | (ids == IMAGE_TOKEN), -100)
    loss, grads = training_step(model, inputs, labels)
    tensors = dict(input_ids=ids, attention_mask=mask, labels=labels, pixel_values=pixels.unsqueeze(1),
                   logits=out.logits, image_features=feats.reshape(2, per_image, 64),
                   greedy_input_ids=one["input_ids"], greedy_tokens=tokens, loss=loss)
    tensors.update(hidden(out))
    tensors.update(grads)
    save(model, name, tensors, {"transformers": transformers.__version__, "torch": torch.__version__})


# Qwen2-VL / Qwen2.5-VL: the special tokens at the top of the tiny vocabulary.
QWEN_VIDEO_TOKEN = VOCAB - 2
QWEN_VISION_START = VOCAB - 3
QWEN_VISION_END = VOCAB - 4
# Patch 4, merge 2: each side a multiple of 8 pixels. Three images of different sizes (height, width).
QWEN_IMAGES = [(16, 24), (32, 16), (24, 24)]
QWEN_TEXT = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, rms_norm_eps=1e-5, max_position_embeddings=256, bos_token_id=1,
                 eos_token_id=2, pad_token_id=0, tie_word_embeddings=False,
                 rope_parameters=dict(rope_type="default", rope_theta=10000.0, mrope_section=[2, 3, 3]))
QWEN_TOKENS = dict(image_token_id=IMAGE_TOKEN, video_token_id=QWEN_VIDEO_TOKEN,
                   vision_start_token_id=QWEN_VISION_START, vision_end_token_id=QWEN_VISION_END)


def make_qwen2_5_vl():
    """Qwen2.5-VL: 4 tower blocks, windows of 2 x 2 merged patches (16 px) in blocks 0 and 2, full attention in 1, 3."""
    vision = dict(depth=4, hidden_size=32, intermediate_size=48, num_heads=2, patch_size=4, temporal_patch_size=2,
                  spatial_merge_size=2, window_size=16, out_hidden_size=64, fullatt_block_indexes=[1, 3])
    cfg = Qwen2_5_VLConfig(text_config=dict(QWEN_TEXT), vision_config=vision, **QWEN_TOKENS)
    qwen_vl_fixture("qwen2_5_vl", Qwen2_5_VLForConditionalGeneration, cfg, 14, labels_after_padding=False)


def make_qwen2_vl():
    """Qwen2-VL: LayerNorm + quick-GELU tower blocks, full attention in every block."""
    vision = dict(depth=2, embed_dim=32, hidden_size=64, mlp_ratio=2, num_heads=2, patch_size=4,
                  temporal_patch_size=2, spatial_merge_size=2)
    cfg = Qwen2VLConfig(text_config=dict(QWEN_TEXT), vision_config=vision, **QWEN_TOKENS)
    qwen_vl_fixture("qwen2_vl", Qwen2VLForConditionalGeneration, cfg, 15, labels_after_padding=False)


def make_qwen3_vl():
    """Qwen3-VL: 3 tower blocks with a 5 x 5 learned position grid (resampled to every image's grid), DeepStack
    from blocks 0 and 2 into decoder layers 0 and 1 of 3, q/k norms, interleaved mrope_section."""
    vision = dict(depth=3, hidden_size=32, intermediate_size=48, num_heads=2, patch_size=4, temporal_patch_size=2,
                  spatial_merge_size=2, out_hidden_size=64, num_position_embeddings=25,
                  deepstack_visual_indexes=[0, 2])
    text = dict(QWEN_TEXT, num_hidden_layers=3, head_dim=16,
                rope_parameters=dict(rope_type="default", rope_theta=10000.0, mrope_section=[2, 3, 3],
                                     mrope_interleaved=True))
    cfg = Qwen3VLConfig(text_config=text, vision_config=vision, **QWEN_TOKENS)
    qwen_vl_fixture("qwen3_vl", Qwen3VLForConditionalGeneration, cfg, 16, labels_after_padding=False)


def qwen_image_tokens(h, w, gen):
    """Flattened patches of one random image as Qwen2VLImageProcessor lays them out (merge blocks row-major,
    `[C, T, p, p]` per patch), its `(t, h, w)` grid and its number of image tokens."""
    gh, gw = h // 4, w // 4
    patches = torch.randn(gh * gw, 3 * 2 * 4 * 4, generator=gen)
    return patches, [1, gh, gw], gh * gw // 4


def qwen_vl_fixture(name, cls, cfg, seed, labels_after_padding=True):
    """`labels_after_padding=False` also ignores the label right after a row's left padding: the last padding
    position predicts it, and transformers' additive mask passes gradient to q and k through that fully masked query
    row (which svlm does not), so only without it does every gradient compare."""
    torch.manual_seed(seed)
    cfg._attn_implementation = "eager"
    cfg.vision_config._attn_implementation = "eager"
    cfg.text_config._attn_implementation = "eager"
    model = cls(cfg).eval()
    scramble(model, seed)
    g = torch.Generator().manual_seed(seed)
    images = [qwen_image_tokens(h, w, g) for h, w in QWEN_IMAGES]
    text = lambda n: torch.randint(3, QWEN_VISION_END, (n,), generator=g).tolist()
    vision = lambda i: [QWEN_VISION_START] + [IMAGE_TOKEN] * images[i][2] + [QWEN_VISION_END]
    # Sample 0: two images of different sizes; sample 1: a third image, left padded.
    rows = [text(3) + vision(0) + text(2) + vision(1) + text(4), text(2) + vision(2) + text(3)]
    ids, mask = left_pad(rows)
    pixels = torch.cat([p for p, _, _ in images])
    grid = torch.tensor([g_ for _, g_, _ in images])
    types = (ids == IMAGE_TOKEN).long()
    inputs = dict(input_ids=ids, attention_mask=mask, pixel_values=pixels, image_grid_thw=grid,
                  mm_token_type_ids=types)
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True)
        vision_out = model.model.get_image_features(pixel_values=pixels, image_grid_thw=grid)
        feats = image_features(vision_out)
        deepstack = {f"deepstack_features.{i}": torch.cat(f) for i, f in
                     enumerate(getattr(vision_out, "deepstack_features", None) or [])}
        position_ids, deltas = model.model.get_rope_index(ids, mm_token_type_ids=types, image_grid_thw=grid,
                                                          attention_mask=mask)
        tokens = greedy(model, **inputs)
    ignored = (mask == 0) | (ids == IMAGE_TOKEN)
    if not labels_after_padding:
        ignored[:, 1:] |= mask[:, :-1] == 0
    labels = ids.masked_fill(ignored, -100)
    loss, grads = training_step(model, inputs, labels)
    tensors = dict(input_ids=ids, attention_mask=mask, labels=labels, pixel_values=pixels, image_grid_thw=grid,
                   logits=out.logits, image_features=feats.reshape(1, -1, 64), position_ids=position_ids,
                   rope_deltas=deltas, batch_greedy_tokens=tokens, loss=loss)
    tensors.update(deepstack)
    tensors.update(hidden(out))
    tensors.update(grads)
    save(model, name, tensors, {"transformers": transformers.__version__, "torch": torch.__version__})


def make_idefics3_processor():
    """Tokenizer + processor files for the tiny Idefics3 model (a word-level vocabulary whose
    `<image>` is the model's image token), a small photo, and what `Idefics3Processor` + greedy
    `generate` give for one chat turn: the reference of `svlm ask`."""
    from PIL import Image
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    from transformers import Idefics3ImageProcessor, Idefics3Processor, PreTrainedTokenizerFast

    d = OUT / "idefics3"
    words = ["<unk>", "<s>", "</s>", "<pad>"]
    words += [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
    words += ["<|im_start|>", "User", "Assistant", ":", "?", ".", ",", "\n"]
    words += ("how far is the red cube from blue chair table what color left right of a an it "
              "meters about cm one two three yes no behind front above below near").split()
    specials = ["<global-img>", "<fake_token_around_image>", "<end_of_utterance>", "<image>"]
    while len(words) + len(specials) < VOCAB:
        words.append(f"w{len(words)}")
    vocab = {w: i for i, w in enumerate(words + specials)}
    assert vocab["<image>"] == IMAGE_TOKEN and len(vocab) == VOCAB
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials + words[:41]])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", padding_side="left")
    template = (
        "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
        "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
        "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
        "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
        "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
    )
    image_processor = Idefics3ImageProcessor(size={"longest_edge": 64}, max_image_size={"longest_edge": 32})
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=fast, image_seq_len=16,
                                  chat_template=template)
    processor.save_pretrained(d)
    # A small synthetic photo: smooth colour ramps with a square, 60 x 30 (splits into 1 x 2 tiles).
    w, h = 60, 30
    img = Image.new("RGB", (w, h))
    img.putdata([((x * 4) % 256, (y * 8) % 256, 200 if 20 <= x < 35 and 8 <= y < 22 else 40)
                 for y in range(h) for x in range(w)])
    img.save(OUT / "photo.png")
    processor = Idefics3Processor.from_pretrained(d)
    question = "how far is the red cube from the blue chair ?"
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=prompt, images=[Image.open(OUT / "photo.png")], return_tensors="pt")
    model = Idefics3ForConditionalGeneration.from_pretrained(d, attn_implementation="eager").eval()
    stop = [fast.eos_token_id, vocab["<end_of_utterance>"]]
    with torch.no_grad():
        gen = model.generate(**inputs, max_new_tokens=12, do_sample=False, eos_token_id=stop, pad_token_id=0)
    new = gen[0, inputs["input_ids"].shape[1]:].tolist()
    while new and new[-1] in stop + [0]:
        new.pop()
    ref = {"question": question, "prompt": prompt, "input_ids": inputs["input_ids"][0].tolist(),
           "pixel_shape": list(inputs["pixel_values"].shape), "tokens": new,
           "answer": processor.tokenizer.decode(new, skip_special_tokens=True)}
    (d / "ask_reference.json").write_text(json.dumps(ref, indent=1))
    print(f"idefics3 processor: {len(ref['input_ids'])} prompt tokens, answer {ref['answer']!r}")


# Qwen2-VL-Instruct's chat template: one copy, beside the processor fixtures that use it too.
from make_processor_fixtures import QWEN2_VL_CHAT_TEMPLATE  # noqa: E402


# The image and text part of Qwen3-VL-Instruct's chat template (no default system turn).
QWEN3_VL_CHAT_TEMPLATE = (
    "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\n' }}"
    "{%- if message.content is string %}{{- message.content }}{%- else %}{%- for content in message.content %}"
    "{%- if content.type == 'image' or 'image' in content or 'image_url' in content %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif 'text' in content %}{{- content.text }}{%- endif %}{%- endfor %}{%- endif %}"
    "{{- '<|im_end|>\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
)


def make_qwen2_5_vl_processor():
    """Tokenizer and processor files for the tiny Qwen2.5-VL model (Qwen2-VL's chat template, CLIP's mean and std)
    and its `svlm ask` reference."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessorPil

    ip = Qwen2VLImageProcessorPil(patch_size=4, merge_size=2, temporal_patch_size=2, min_pixels=8 * 8 * 4,
                                  max_pixels=8 * 8 * 16)
    qwen_vl_processor("qwen2_5_vl", Qwen2_5_VLProcessor, Qwen2_5_VLForConditionalGeneration, ip,
                      QWEN2_VL_CHAT_TEMPLATE)


def make_qwen3_vl_processor():
    """Tokenizer and processor files for the tiny Qwen3-VL model (`Qwen3VLProcessor`, the image/text part of
    Qwen3-VL's chat template, mean and std 0.5) and its `svlm ask` reference."""
    from transformers import Qwen2VLImageProcessorPil, Qwen3VLProcessor

    ip = Qwen2VLImageProcessorPil(patch_size=4, merge_size=2, temporal_patch_size=2, image_mean=[0.5, 0.5, 0.5],
                                  image_std=[0.5, 0.5, 0.5], min_pixels=8 * 8 * 4, max_pixels=8 * 8 * 16)
    qwen_vl_processor("qwen3_vl", Qwen3VLProcessor, Qwen3VLForConditionalGeneration, ip, QWEN3_VL_CHAT_TEMPLATE)


def qwen_vl_processor(name, processor_cls, model_cls, ip, chat_template):
    """Tokenizer and processor files for a tiny Qwen-VL model, laid out as the hub folders are (a word-level
    vocabulary whose `<|image_pad|>`, `<|vision_start|>`... are the model's ids; `Qwen2VLImageProcessor` with the
    model's 4-pixel patches and a small pixel budget), and what the processor and greedy `generate` give for one chat
    turn about the photo: the reference of `svlm ask`."""
    from PIL import Image
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    from transformers.processing_utils import ProcessorMixin

    d = OUT / name
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    words = ("system You are a helpful assistant user . , ? : how far is the red cube from blue chair table what "
             "color left right of an it meters about cm one two three yes no behind front above below near "
             "which closer taller wider").split()
    vision = ["<|vision_end|>", "<|vision_start|>", "<|video_pad|>", "<|image_pad|>"]
    while len(specials) + len(words) + len(vision) < VOCAB:
        words.append(f"w{len(words)}")
    vocab = {w: i for i, w in enumerate(specials + words + vision)}
    assert len(vocab) == VOCAB and "w60" in vocab
    assert vocab["<|image_pad|>"] == IMAGE_TOKEN and vocab["<|vision_start|>"] == QWEN_VISION_START
    assert vocab["<|vision_end|>"] == QWEN_VISION_END and vocab["<|video_pad|>"] == QWEN_VIDEO_TOKEN
    tok = Tokenizer(models.WordLevel(vocab, unk_token="w60"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials + vision])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   padding_side="left")
    # The Qwen-VL video processors need torchvision, which fixtures are made without: build without it.
    check = ProcessorMixin.check_argument_for_proper_class
    ProcessorMixin.check_argument_for_proper_class = lambda self, name, arg: (
        None if arg is None else check(self, name, arg))
    processor = processor_cls(image_processor=ip, tokenizer=fast, chat_template=chat_template)
    ProcessorMixin.check_argument_for_proper_class = check
    fast.save_pretrained(d)
    ip.save_pretrained(d)
    config = json.loads((d / "preprocessor_config.json").read_text())
    config["processor_class"] = processor_cls.__name__
    (d / "preprocessor_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (d / "chat_template.json").write_text(json.dumps({"chat_template": chat_template}, indent=2) + "\n")
    question = "how far is the red cube from the blue chair ?"
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[prompt], images=[Image.open(OUT / "photo.png")], return_tensors="pt")
    model = model_cls.from_pretrained(d, attn_implementation="eager").eval()
    stop = [vocab["<|im_end|>"]]
    with torch.no_grad():
        gen = model.generate(**inputs, max_new_tokens=12, do_sample=False, eos_token_id=stop, pad_token_id=0)
    new = gen[0, inputs["input_ids"].shape[1]:].tolist()
    while new and new[-1] in stop + [0]:
        new.pop()
    ref = {"question": question, "prompt": prompt, "input_ids": inputs["input_ids"][0].tolist(),
           "image_grid_thw": inputs["image_grid_thw"].tolist(), "pixel_shape": list(inputs["pixel_values"].shape),
           "tokens": new, "answer": processor.tokenizer.decode(new, skip_special_tokens=True)}
    (d / "ask_reference.json").write_text(json.dumps(ref, indent=1))
    print(f"{name} processor: {len(ref['input_ids'])} prompt tokens, grid {ref['image_grid_thw']}, "
          f"answer {ref['answer']!r}")


def check_export(folder, name):
    """Loads a folder written by svlm's `export_hf` with transformers and compares its logits on
    the fixture's reference inputs:  python3 scripts/make_fixtures.py --check-export DIR llama"""
    from safetensors.torch import load_file

    cls = {"llama": LlamaForCausalLM, "idefics3": Idefics3ForConditionalGeneration,
           "llava": LlavaForConditionalGeneration, "qwen2_5_vl": Qwen2_5_VLForConditionalGeneration,
           "qwen2_vl": Qwen2VLForConditionalGeneration, "qwen3_vl": Qwen3VLForConditionalGeneration}[name]
    model = cls.from_pretrained(folder, attn_implementation="eager").eval()
    ref = load_file(str(OUT / name / "reference.safetensors"))
    inputs = dict(input_ids=ref["input_ids"], attention_mask=ref["attention_mask"])
    if name == "idefics3":
        inputs.update(pixel_values=ref["pixel_values"], pixel_attention_mask=ref["pixel_attention_mask"].bool())
    elif name == "llava":
        inputs.update(pixel_values=ref["pixel_values"][:, 0])
    elif name in ("qwen2_5_vl", "qwen2_vl", "qwen3_vl"):
        inputs.update(pixel_values=ref["pixel_values"], image_grid_thw=ref["image_grid_thw"],
                      mm_token_type_ids=(ref["input_ids"] == IMAGE_TOKEN).long())
    with torch.no_grad():
        logits = model(**inputs).logits
    keep = ref["attention_mask"].bool()
    diff = (logits - ref["logits"])[keep].abs().max().item()
    print(f"{name}: transformers loads {folder}; max |logits - reference| = {diff:.3e}")
    assert diff <= 1e-4, diff


if __name__ == "__main__":
    import sys

    if len(sys.argv) == 4 and sys.argv[1] == "--check-export":
        check_export(sys.argv[2], sys.argv[3])
        sys.exit(0)
    single = {"qwen2": [make_qwen2], "llava_siglip": [make_llava_siglip],
              "qwen2_5_vl": [make_qwen2_5_vl, make_qwen2_5_vl_processor], "qwen2_vl": [make_qwen2_vl],
              "qwen3_vl": [make_qwen3_vl, make_qwen3_vl_processor]}
    if len(sys.argv) == 2 and sys.argv[1] in single:
        for make in single[sys.argv[1]]:
            make()
        sys.exit(0)
    OUT.mkdir(parents=True, exist_ok=True)
    make_llama()
    make_qwen2()
    make_idefics3()
    make_idefics3_processor()
    make_llava()
    make_llava_siglip()
    make_qwen2_5_vl()
    make_qwen2_5_vl_processor()
    make_qwen2_vl()
    make_qwen3_vl()
    make_qwen3_vl_processor()
