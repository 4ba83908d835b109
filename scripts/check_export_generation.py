"""Loads a folder written by `svlm export` (or `svlm quickstart`'s runs after export) with transformers and answers
one question about one image with greedy decoding, printing the answer and the last-position logits' top ids, so
they can be compared with `svlm ask` on the same folder:

    svlm export out/quickstart/runs/ratio_0.50 --out /tmp/exported
    python3 scripts/check_export_generation.py /tmp/exported out/quickstart/data/images/test-000000.png "Is the red cube left of the blue ball?"
    svlm ask --model /tmp/exported --image out/quickstart/data/images/test-000000.png "Is the red cube left of the blue ball?"

Works for every family `svlm export` writes (Idefics3/SmolVLM, LLaVA, Qwen2-VL, Qwen2.5-VL, Qwen3-VL). Without
torchvision, the Qwen-VL processors are built from their image processor, tokenizer and chat template alone (their
video processor needs torchvision; images do not).

Needs torch, transformers and pillow (generation only: CI never runs this).
"""
import json
import os
import sys

import torch
import transformers
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer
from transformers.processing_utils import ProcessorMixin


def load_processor(folder):
    try:
        return AutoProcessor.from_pretrained(folder)
    except ImportError:
        with open(os.path.join(folder, "preprocessor_config.json")) as f:
            cls = getattr(transformers, json.load(f)["processor_class"])
        with open(os.path.join(folder, "chat_template.json")) as f:
            template = json.load(f)["chat_template"]
        check = ProcessorMixin.check_argument_for_proper_class
        ProcessorMixin.check_argument_for_proper_class = lambda self, name, arg: (
            None if arg is None else check(self, name, arg))
        try:
            return cls(image_processor=AutoImageProcessor.from_pretrained(folder),
                       tokenizer=AutoTokenizer.from_pretrained(folder), chat_template=template)
        finally:
            ProcessorMixin.check_argument_for_proper_class = check


def main(folder, image_path, question, max_new_tokens=32):
    processor = load_processor(folder)
    model = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32).eval()
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=prompt, images=[Image.open(image_path).convert("RGB")], return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits[0, -1]
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    new = out[0, inputs["input_ids"].shape[1]:]
    answer = processor.decode(new, skip_special_tokens=True).strip()
    top = torch.topk(logits, 5)
    print(json.dumps({
        "answer": answer,
        "generated_ids": new.tolist(),
        "prompt_tokens": int(inputs["input_ids"].shape[1]),
        "last_logits_top_ids": top.indices.tolist(),
        "last_logits_top_values": [round(v, 5) for v in top.values.tolist()],
    }, indent=1))


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3])
