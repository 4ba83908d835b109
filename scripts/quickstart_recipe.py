"""Search for a quickstart training recipe in PyTorch, on the data `svlm quickstart` writes (experiments/quickstart.md).

PyTorch trains this tiny model ~3x faster than Burn on the CPU, so recipes are compared here first and the winner is
then run by svlm itself. The model is transformers' Idefics3ForConditionalGeneration built from the quickstart's
`model/config.json` (with overrides), vision position embeddings from N(0, 1) as svlm does for from-scratch models.
Held-out accuracy per question type is measured teacher-forced: an answer counts as right when every answer token is
the model's argmax, which is exactly when greedy decoding would reproduce it. Length answers are scored the same way
(exact tokens), so their numbers here are far below the within-2x share the real evaluation reports.

    svlm quickstart --out /tmp/qs            # writes /tmp/qs/data and /tmp/qs/model (stop it after the data stage)
    python3 scripts/quickstart_recipe.py /tmp/qs --steps 600 --batch 64 --ratio 0.5

Needs torch + transformers (not run by CI).
"""
import argparse
import json
import math
import random
import re
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import Idefics3Config, Idefics3ForConditionalGeneration, PreTrainedTokenizerFast

BINARY = {"left_predicate", "right_predicate", "front_predicate", "behind_predicate", "taller_predicate",
          "shorter_predicate"}
CHOICE = {"left_choice", "right_choice", "front_choice", "behind_choice", "taller_choice", "shorter_choice"}


def load_pairs(path, limit=None, image_root=None):
    """(image, question, answer, type) for every turn of every record; image paths under `image_root` when given."""
    out = []
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            conv = r["conversations"]
            for t in range(0, len(conv) - 1, 2):
                q = conv[t]["value"].replace("<image>\n", "").replace("<image>", "")
                kind = r["spatial"][t // 2]["type"] if t // 2 < len(r["spatial"]) else "?"
                image = str(Path(image_root) / r["image"]) if image_root else r["image"]
                out.append((image, q, conv[t + 1]["value"], kind))
            if limit and len(out) >= limit:
                break
    return out


class Encoder:
    def __init__(self, model_dir, image_seq_len):
        self.tok = PreTrainedTokenizerFast(tokenizer_file=str(model_dir / "tokenizer.json"))
        self.image_seq_len = image_seq_len
        self.cache = {}

    def ids(self, question, answer):
        prompt = ("<|im_start|>User:<fake_token_around_image><global-img>" + "<image>" * self.image_seq_len
                  + "<fake_token_around_image>" + question + "<end_of_utterance>\nAssistant:")
        p = self.tok.encode(prompt, add_special_tokens=False)
        a = self.tok.encode(prompt + " " + answer + "<end_of_utterance>\n", add_special_tokens=False)
        assert a[:len(p)] == p
        return a, len(p)


def image_tensor(data_dir, rel, cache):
    if rel not in cache:
        img = np.asarray(Image.open(data_dir / rel).convert("RGB"), dtype=np.float32)
        cache[rel] = torch.from_numpy((img / 255.0 - 0.5) / 0.5).permute(2, 0, 1)
    return cache[rel]


def collate(items, enc, data_dir, images, pad_id):
    seqs = [enc.ids(q, a) for (_, q, a, _) in items]
    n = max(len(s) for s, _ in seqs)
    ids = torch.full((len(items), n), pad_id)
    labels = torch.full((len(items), n), -100)
    mask = torch.zeros((len(items), n), dtype=torch.long)
    for i, (s, p) in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        labels[i, p:len(s)] = torch.tensor(s[p:])
        mask[i, :len(s)] = 1
    pix = torch.stack([image_tensor(data_dir, im, images) for (im, _, _, _) in items])[:, None]
    return ids, labels, mask, pix, [p for _, p in seqs], [len(s) for s, _ in seqs]


def sincos_2d(side, dim):
    """[side * side, dim] positions in raster order: x in the first dim / 2 channels, y in the rest, each as sines
    and cosines of geometric frequencies, scaled to unit variance."""
    quarter = dim // 4
    freq = math.pi / side * side ** (torch.arange(quarter) / quarter)  # from half a period across the image up
    ys, xs = torch.meshgrid(torch.arange(side, dtype=torch.float32), torch.arange(side, dtype=torch.float32),
                            indexing="ij")
    parts = []
    for coord in (xs.flatten(), ys.flatten()):
        angles = coord[:, None] * freq[None, :]
        parts += [angles.sin(), angles.cos()]
    return torch.cat(parts, 1) * math.sqrt(2.0)


def evaluate(model, items, enc, data_dir, images, pad_id, device, batch=128):
    right, total = defaultdict(int), defaultdict(int)
    model.eval()
    with torch.no_grad():
        for i in range(0, len(items), batch):
            chunk = items[i:i + batch]
            ids, labels, mask, pix, starts, ends = collate(chunk, enc, data_dir, images, pad_id)
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), pixel_values=pix.to(device),
                           pixel_attention_mask=torch.ones(len(chunk), 1, pix.shape[-2], pix.shape[-1],
                                                           dtype=torch.bool, device=device)).logits
            pred = logits.argmax(-1).cpu()
            for j, (_, _, answer, kind) in enumerate(chunk):
                # answer tokens up to <end_of_utterance> (the trailing newline is not scored)
                hit = pred[j, starts[j] - 1:ends[j] - 2] == ids[j, starts[j]:ends[j] - 1]
                right[kind] += bool(hit.all())
                total[kind] += 1
                if kind in BINARY and answer.startswith("From "):
                    # teacher-forced segments of a reasoned answer, one per sentence: "listing. So x: tag. Asked: y.
                    # verdict." (or, in the "First/Asked" format: "listing. First: x. Asked: y. verdict.")
                    ends_at = [k for k, t in enumerate(ids[j, starts[j]:ends[j] - 1].tolist())
                               if "." in enc.tok.decode([t])]
                    lo = 0
                    for name, hi in zip(("seg_listing", "seg_first", "seg_asked", "seg_verdict"), ends_at):
                        right[name] += bool(hit[lo:hi + 1].all())
                        total[name] += 1
                        lo = hi + 1
    model.train()
    return {k: right[k] / total[k] for k in total}


def conclusion(kind, question, text):
    """What an answer concludes, read as svlm's evaluation reads it (svlm-answers): the last yes/no word of a
    predicate; for a "which" choice, the option named after the last "so" (or in the whole answer when that part
    names none): a whole option's name first, else the earliest word that only one option has."""
    text = text.lower().replace("<end_of_utterance>", " ")
    if kind in BINARY:
        said = re.findall(r"\b(yes|no)\b", text)
        return said[-1] if said else None
    options = re.search(r", the (.+) or the (.+)\?$", question.lower())
    if not options:
        return None
    options = [o.split() for o in options.groups()]
    for part in (re.split(r"\bso\b", text)[-1], text):
        words = re.findall(r"[a-z]+", part)
        mentions = [(p, i) for i, o in enumerate(options) for p in range(len(words)) if words[p:p + len(o)] == o]
        if mentions:
            return min(mentions)[1]
        for word in words:
            owners = [i for i, o in enumerate(options) if word in o and word != "the"]
            if len(owners) == 1:
                return owners[0]
    return None


def greedy_answers(model, items, enc, data_dir, images, device, max_new=48):
    """Greedy-decoded accuracy per yes/no and "which" type: the answer's conclusion against the reference's.
    Prompts are grouped by length, so nothing is padded."""
    groups = defaultdict(list)
    for item in items:
        if item[3] in BINARY or item[3] in CHOICE:
            ids, start = enc.ids(item[1], item[2])
            groups[start].append((ids[:start], item))
    end_id = enc.tok.convert_tokens_to_ids("<end_of_utterance>")
    right, total = defaultdict(int), defaultdict(int)
    model.eval()
    with torch.no_grad():
        for _, group in sorted(groups.items()):
            for i in range(0, len(group), 128):
                chunk = group[i:i + 128]
                ids = torch.tensor([p for p, _ in chunk], device=device)
                pix = torch.stack([image_tensor(data_dir, it[0], images) for _, it in chunk])[:, None].to(device)
                pmask = torch.ones(len(chunk), 1, pix.shape[-2], pix.shape[-1], dtype=torch.bool, device=device)
                done = torch.zeros(len(chunk), dtype=torch.bool, device=device)
                for _ in range(max_new):
                    logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pix,
                                   pixel_attention_mask=pmask).logits[:, -1]
                    nxt = logits.argmax(-1)
                    nxt[done] = end_id
                    ids = torch.cat([ids, nxt[:, None]], 1)
                    done |= nxt == end_id
                    if done.all():
                        break
                for j, (p, (_, question, answer, kind)) in enumerate(chunk):
                    said = conclusion(kind, question, enc.tok.decode(ids[j, len(p):].tolist()))
                    right[kind] += said is not None and said == conclusion(kind, question, answer)
                    total[kind] += 1
    model.train()
    return {k: right[k] / total[k] for k in total}


def report(model, test, enc, data_dir, images, pad_id, step, greedy, device):
    acc = evaluate(model, test, enc, data_dir, images, pad_id, device)
    binary = [acc[k] for k in BINARY if k in acc]
    print(f"== step {step}: binary mean {np.mean(binary):.3f} | "
          + " ".join(f"{k}={acc[k]:.2f}" for k in sorted(acc)), flush=True)
    result = {"step": step, "teacher_forced": acc}
    if greedy:
        said = greedy_answers(model, test, enc, data_dir, images, device)
        yes_no = [v for k, v in said.items() if k in BINARY]
        which = [v for k, v in said.items() if k in CHOICE]
        print(f"== greedy yes/no accuracy: mean {np.mean(yes_no):.3f}, which: mean {np.mean(which):.3f} | "
              + " ".join(f"{k}={said[k]:.2f}" for k in sorted(said)), flush=True)
        result.update(greedy=said, greedy_yes_no=float(np.mean(yes_no)), greedy_which=float(np.mean(which)))
    print("== result " + json.dumps(result), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("quickstart_dir", type=Path)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--vision-hidden", type=int, default=None)
    ap.add_argument("--vision-layers", type=int, default=None)
    ap.add_argument("--patch", type=int, default=None)
    ap.add_argument("--text-layers", type=int, default=None)
    ap.add_argument("--text-hidden", type=int, default=None)
    ap.add_argument("--text-heads", type=int, default=None, help="text attention heads (head size follows)")
    ap.add_argument("--text-kv-heads", type=int, default=None)
    ap.add_argument("--pos-std", type=float, default=1.0)
    ap.add_argument("--pos-init", default="normal", choices=["normal", "sincos"],
                    help="vision position embeddings: N(0, pos-std^2), or a 2D sine-cosine table (x in half the "
                         "channels, y in the other half) scaled to pos-std")
    ap.add_argument("--types", default=None, help="comma list: train on these spatial types only")
    ap.add_argument("--scale-factor", type=int, default=None, help="pixel shuffle factor (1: one token per patch)")
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    ap.add_argument("--train-dir", type=Path, default=None,
                    help="train on this quickstart folder's data instead (e.g. a recipe_variants.py rewrite); the "
                         "model config and tokenizer still come from quickstart_dir")
    ap.add_argument("--eval-dir", type=Path, default=None,
                    help="score on this quickstart folder's held-out sets instead (e.g. one written with another "
                         "--seed: a validation set, so that choosing a recipe does not tune on the test scenes)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--load", type=Path, default=None,
                    help="evaluate this checkpoint (a folder from_pretrained reads, e.g. an svlm checkpoint) instead "
                         "of training")
    ap.add_argument("--stop-after", type=int, default=None,
                    help="stop after this many steps (the schedule still spans --steps): compare early loss curves")
    ap.add_argument("--exact-mix", action="store_true",
                    help="every batch holds exactly round(ratio * batch) spatial samples, as svlm's trainer does "
                         "(default: a coin per sample)")
    ap.add_argument("--decay-1d", choices=["yes", "no"], default="yes",
                    help="no: spare norms and biases (1-D parameters) from weight decay, as svlm's trainer does")
    ap.add_argument("--schedule", default="cosine", choices=["cosine", "wsd"],
                    help="wsd: warmup, constant, then a linear decay over the last 20%% of the steps")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    data_dir = (args.train_dir or args.quickstart_dir) / "data"
    cfg = json.loads((args.quickstart_dir / "model" / "config.json").read_text())
    v, t = cfg["vision_config"], cfg["text_config"]
    if args.vision_hidden:
        v["hidden_size"], v["intermediate_size"] = args.vision_hidden, 2 * args.vision_hidden
    if args.vision_layers:
        v["num_hidden_layers"] = args.vision_layers
    if args.patch:
        v["patch_size"] = args.patch
    if args.scale_factor:
        cfg["scale_factor"] = args.scale_factor
    if args.text_layers:
        t["num_hidden_layers"] = args.text_layers
    if args.text_hidden:
        t["hidden_size"], t["intermediate_size"] = args.text_hidden, args.text_hidden * 8 // 3
    if args.text_heads:
        t["num_attention_heads"] = args.text_heads
    if args.text_kv_heads:
        t["num_key_value_heads"] = args.text_kv_heads
    if args.text_hidden or args.text_heads:
        t["head_dim"] = t["hidden_size"] // t["num_attention_heads"]
    image_seq_len = (v["image_size"] // v["patch_size"]) ** 2 // cfg["scale_factor"] ** 2
    model = Idefics3ForConditionalGeneration(Idefics3Config(**cfg)).train()
    table = model.model.vision_model.embeddings.position_embedding.weight.data
    if args.load:
        model = Idefics3ForConditionalGeneration.from_pretrained(args.load).eval()
    elif args.pos_init == "sincos":
        table.copy_(sincos_2d(v["image_size"] // v["patch_size"], table.shape[1]) * args.pos_std)
    else:
        table.normal_(0, args.pos_std)
    enc = Encoder(args.quickstart_dir / "model", image_seq_len)
    pad_id = t["pad_token_id"]

    spatial = load_pairs(data_dir / "spatial_train.jsonl")
    if args.types:
        keep = set(args.types.split(","))
        spatial = [x for x in spatial if x[3] in keep]
    general = load_pairs(data_dir / "general_train.jsonl")
    eval_data = (args.eval_dir or args.quickstart_dir) / "data"
    test = (load_pairs(eval_data / "spatial_test.jsonl", image_root=eval_data)
            + load_pairs(eval_data / "general_test.jsonl", image_root=eval_data))
    images = {}
    print(f"spatial {len(spatial)} general {len(general)} test {len(test)} image tokens {image_seq_len}; "
          f"params {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M", flush=True)

    device = torch.device(args.device)
    model.to(device)
    if args.load:
        report(model, test, enc, data_dir, images, pad_id, 0, True, device)
        return
    params = model.parameters()
    if args.decay_1d == "no":
        params = [{"params": [p for p in model.parameters() if p.dim() >= 2]},
                  {"params": [p for p in model.parameters() if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.95), weight_decay=args.weight_decay)
    def shape(s):
        if args.schedule == "wsd":
            return max(0.05, min(1.0, (args.steps - s) / (0.2 * args.steps)))
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * s / args.steps))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1, (s + 1) / args.warmup) * shape(s))
    started = time.time()
    for step in range(1, args.steps + 1):
        if args.exact_mix:
            n_spatial = round(args.ratio * args.batch)
            batch = ([rng.choice(spatial) for _ in range(n_spatial)]
                     + [rng.choice(general) for _ in range(args.batch - n_spatial)])
        else:
            batch = [rng.choice(spatial) if rng.random() < args.ratio else rng.choice(general)
                     for _ in range(args.batch)]
        ids, labels, mask, pix, _, _ = collate(batch, enc, data_dir, images, pad_id)
        out = model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device),
                    pixel_values=pix.to(device),
                    pixel_attention_mask=torch.ones(len(batch), 1, pix.shape[-2], pix.shape[-1], dtype=torch.bool,
                                                    device=device))
        opt.zero_grad()
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 10 == 0:
            print(f"step {step} loss {out.loss.item():.4f} ({time.time() - started:.0f} s)", flush=True)
        if step % args.eval_every == 0 or step == args.steps:
            report(model, test, enc, data_dir, images, pad_id, step, step == args.steps, device)
        if args.stop_after and step >= args.stop_after:
            break


if __name__ == "__main__":
    main()
