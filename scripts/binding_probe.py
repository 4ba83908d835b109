"""Binding probe (experiments/quickstart.md): how many samples does the quickstart's tiny Idefics3 need to learn
*where a named object is* on toy images, in PyTorch (transformers' Idefics3ForConditionalGeneration, the
quickstart's model/config.json and tokenizer, vision position embeddings from N(0, 1) as svlm draws them)?

Images: 64x64 gray (optional Gaussian noise), 1-2 squares of distinct colours (8 colours), `--size` px.
Tasks: `single` "Is the red object on the left side?" -> Yes./No.; `side` "Where is the red object?" -> Left./Right.;
`pair` "Is the red object left of the blue object?" -> Yes./No.; `caption` "List the objects from left to right."
(`--mix-caption`, `--mix-single` mix them in). Held-out accuracy (256 images, exact answer) every 100 steps.

    svlm quickstart --out /tmp/qs --steps 1     # its model/ folder gives the config and tokenizer
    python3 scripts/binding_probe.py --model-dir /tmp/qs/model --task single --objects 1 --size 16 --noise 0

Needs torch + transformers (not run by CI).
"""
import argparse
import json
import math
import random
import time

import numpy as np
import torch
from transformers import Idefics3Config, Idefics3ForConditionalGeneration, PreTrainedTokenizerFast

COLORS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 220), "yellow": (230, 210, 40),
          "purple": (140, 50, 170), "orange": (240, 140, 30), "pink": (240, 120, 180), "cyan": (40, 200, 210)}
NAMES = list(COLORS)


NOISE = 8.0
SIZE = 10


def scene(rng, n_obj, size):
    img = np.full((64, 64, 3), 120, np.float32) + np.random.default_rng(rng.randrange(1<<30)).normal(0, NOISE, (64, 64, 3))
    cols = rng.sample(NAMES, n_obj)
    pos = []
    while len(pos) < n_obj:
        x, y = rng.randrange(0, 64 - size), rng.randrange(0, 64 - size)
        if all(abs(x - a) >= size + 2 or abs(y - b) >= size + 2 for a, b in pos):
            pos.append((x, y))
    for c, (x, y) in zip(cols, pos):
        img[y:y + size, x:x + size] = COLORS[c]
    img = np.clip(img, 0, 255)
    return torch.from_numpy((img / 255 - 0.5) / 0.5).permute(2, 0, 1).float(), cols, pos


def qa(rng, task, cols, pos):
    if task == "caption":
        order = sorted(range(len(cols)), key=lambda k: pos[k][0])
        return "List the objects from left to right.", ", ".join(f"the {cols[k]} object" for k in order).capitalize() + "."
    if task == "single":
        i = rng.randrange(len(cols))
        return f"Is the {cols[i]} object on the left side?", "Yes." if pos[i][0] + SIZE / 2 < 32 else "No."
    if task == "side":
        i = rng.randrange(len(cols))
        return f"Where is the {cols[i]} object?", "Left." if pos[i][0] + SIZE / 2 < 32 else "Right."
    if task == "side_subject":
        # The answer names the object before its side: the side is read one token after the colour word.
        i = rng.randrange(len(cols))
        side = "left" if pos[i][0] + SIZE / 2 < 32 else "right"
        return f"Where is the {cols[i]} object?", f"The {cols[i]} object is on the {side}."
    i, j = rng.sample(range(len(cols)), 2)
    answer = "Yes." if pos[i][0] < pos[j][0] else "No."
    if task == "pair_subject":
        # The answer restates the subject and its relation before deciding: the relation word is read right
        # after the colour of the subject, and yes/no compares it with the question's word.
        relation = "left" if pos[i][0] < pos[j][0] else "right"
        answer = f"The {cols[i]} object is {relation} of the {cols[j]} object, so {answer[:-1].lower()}."
    if task == "pair_scratch":
        # A scratchpad where every step is one short look back: the listing (position -> name), its first
        # colour, the question's first colour copied, then yes/no from the two colours just written.
        order = sorted(range(len(cols)), key=lambda k: pos[k][0])
        listed = ", ".join(cols[k] for k in order)
        answer = f"From left to right: {listed}. First: {cols[order[0]]}. Asked: {cols[i]}. {answer}"
    if task == "pair_listed":
        # The answer first lists the objects left to right (position -> name, learned fast), then says yes or no.
        order = sorted(range(len(cols)), key=lambda k: pos[k][0])
        listed = ", ".join(f"the {cols[k]} object" for k in order)
        answer = f"From left to right: {listed}. {answer}"
    return f"Is the {cols[i]} object left of the {cols[j]} object?", answer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="pair")
    ap.add_argument("--objects", type=int, default=2)
    ap.add_argument("--size", type=int, default=10)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--text-layers", type=int, default=3)
    ap.add_argument("--kv", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--mix-single", type=float, default=0.0)
    ap.add_argument("--mix-caption", type=float, default=0.0)
    ap.add_argument("--noise", type=float, default=8.0)
    ap.add_argument("--model-dir", default="out/quickstart/model")
    ap.add_argument("--pixel-config", action="store_true", help="the model config of position_init_experiment.py")
    ap.add_argument("--question-first", action="store_true", help="the question before the image in the user turn")
    args = ap.parse_args()
    global NOISE, SIZE
    NOISE, SIZE = args.noise, args.size
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = json.load(open(f"{args.model_dir}/config.json"))
    cfg["text_config"]["num_hidden_layers"] = args.text_layers
    cfg["text_config"]["num_key_value_heads"] = args.kv
    cfg["text_config"]["num_attention_heads"] = args.heads
    cfg["text_config"]["head_dim"] = 96 // args.heads
    if args.pixel_config:
        t = cfg["text_config"]
        t.update(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=32, tie_word_embeddings=False)
        cfg["tie_word_embeddings"] = False
    model = Idefics3ForConditionalGeneration(Idefics3Config(**cfg)).train()
    model.model.vision_model.embeddings.position_embedding.weight.data.normal_(0, 1.0)
    tok = PreTrainedTokenizerFast(tokenizer_file=f"{args.model_dir}/tokenizer.json")
    image = "<fake_token_around_image><global-img>" + "<image>" * 16 + "<fake_token_around_image>"

    def prompt(q):
        if args.question_first:
            return "<|im_start|>User:" + q + image + "<end_of_utterance>\nAssistant:"
        return "<|im_start|>User:" + image + q + "<end_of_utterance>\nAssistant:"
    rng = random.Random(0)

    def batch(n, r, caption=None):
        caption = args.mix_caption if caption is None else caption
        ids, labs, pix = [], [], []
        for _ in range(n):
            p, cols, pos = scene(r, args.objects, args.size)
            task = "caption" if r.random() < caption else ("single" if r.random() < args.mix_single else args.task)
            q, a = qa(r, task, cols, pos)
            pr = tok.encode(prompt(q), add_special_tokens=False)
            full = tok.encode(prompt(q) + " " + a + "<end_of_utterance>\n", add_special_tokens=False)
            ids.append(full); labs.append([-100] * len(pr) + full[len(pr):]); pix.append(p)
        n_max = max(map(len, ids))
        I = torch.full((n, n_max), 2); L = torch.full((n, n_max), -100); M = torch.zeros((n, n_max), dtype=torch.long)
        for k, (s, l) in enumerate(zip(ids, labs)):
            I[k, :len(s)] = torch.tensor(s); L[k, :len(l)] = torch.tensor(l); M[k, :len(s)] = 1
        return I, L, M, torch.stack(pix)[:, None]

    test = batch(256, random.Random(99), caption=0.0)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1, (s + 1) / 30) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * s / args.steps))))
    t0 = time.time()
    for step in range(1, args.steps + 1):
        I, L, M, P = batch(args.batch, rng)
        out = model(input_ids=I, attention_mask=M, labels=L, pixel_values=P,
                    pixel_attention_mask=torch.ones(len(I), 1, 64, 64, dtype=torch.bool))
        opt.zero_grad(); out.loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step(); sched.step()
        if step % 100 == 0:
            model.eval()
            with torch.no_grad():
                I2, L2, M2, P2 = test
                lg = model(input_ids=I2, attention_mask=M2, pixel_values=P2,
                           pixel_attention_mask=torch.ones(len(I2), 1, 64, 64, dtype=torch.bool)).logits
            model.train()
            pred = lg[:, :-1].argmax(-1)
            tgt = L2[:, 1:]
            right = (pred == tgt) | (tgt == -100)
            acc = right.all(1).float().mean().item()
            parts = ""
            if args.task in ("pair_listed", "pair_scratch"):
                # The last answer word and what follows it vs the listing before it (teacher-forced).
                tail = len(tok.encode(" Yes.<end_of_utterance>\n", add_special_tokens=False))
                last = (tgt != -100).long().cumsum(1).max(1, keepdim=True).values
                rank = (tgt != -100).long().cumsum(1)
                is_tail = (tgt != -100) & (rank > last - tail)
                listing = (right | is_tail).all(1).float().mean().item()
                final = (right | ~is_tail).all(1).float().mean().item()
                parts = f" listing {listing:.3f} final {final:.3f}"
            print(f"step {step} loss {out.loss.item():.4f} test acc {acc:.3f}{parts} ({time.time() - t0:.0f}s)", flush=True)


main()
