"""Rewrite a quickstart data folder into a recipe variant, for scripts/quickstart_recipe.py (experiments/quickstart.md).

The variant gets its own folder: rewritten spatial_*.jsonl, the general sets copied, and links to the original's
images and model. Each variant changes only the spatial training (and, for answer formats, test) records:

    marker          "From left to right: the green box (asked), the purple cylinder. Yes."
    colour-verdict  "... First: green. Asked: purple. No." (the full names when the two share a colour)
    short           "From left to right: green box, purple cylinder. First: green box. Asked: green box. Yes." (no
                    "the" in a reasoned answer: four tokens fewer)
    mix             keep 1 in --keep-lengths of the distance and camera-distance records; with --given F, also
                    add for a share F of the yes/no records a copy whose question gives the listing and whose answer
                    is the rest ("From left to right: A, B. Is A left of B?" -> "First: A. Asked: A. Yes.")

    python3 scripts/recipe_variants.py mix /tmp/qs /tmp/qs_mix --keep-lengths 3 --given 0.33

The answer variants rewrite the "First/Asked" reasoned format ("... First: the x. Asked: the y. Yes."); answers in
the colour-key format (colour keys, tagged ends) are left as they are. Needs Python only (not run by CI).
"""
import argparse
import json
import os
import random
import re
import shutil
from pathlib import Path

NAME = r"(the \w+ \w+)"
PREDICATE = re.compile(rf"(From [a-z ]+?): {NAME}, {NAME}\. (First|Last): {NAME}\. Asked: {NAME}\. (Yes|No)\.$")


def marker(answer):
    m = PREDICATE.match(answer)
    if not m:
        return answer
    axis, x, y, _, _, subject, verdict = m.groups()
    x_mark = " (asked)" if x == subject else ""
    y_mark = " (asked)" if y == subject else ""
    return f"{axis}: {x}{x_mark}, {y}{y_mark}. {verdict}."


def colour_verdict(answer):
    m = PREDICATE.match(answer)
    if not m:
        return answer
    axis, x, y, end, picked, subject, verdict = m.groups()
    if x.split()[1] == y.split()[1]:
        return answer
    return f"{axis}: {x}, {y}. {end}: {picked.split()[1]}. Asked: {subject.split()[1]}. {verdict}."


def short(answer):
    return re.sub(r"\bthe ", "", answer) if answer.startswith("From ") else answer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("variant", choices=["marker", "colour-verdict", "short", "mix"])
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--keep-lengths", type=int, default=1, help="mix: keep 1 in N length records")
    ap.add_argument("--given", type=float, default=0.0, help="mix: share of yes/no records given their listing")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    (args.dst / "data").mkdir(parents=True, exist_ok=True)
    for name in ("model", "data/images"):
        if not (args.dst / name).exists():
            os.symlink((args.src / name).resolve(), args.dst / name)
    for name in ("general_train.jsonl", "general_test.jsonl"):
        shutil.copy(args.src / "data" / name, args.dst / "data" / name)
    counts = {"records": 0, "rewritten": 0, "dropped": 0, "added": 0}
    for split in ("train", "test"):
        with open(args.dst / "data" / f"spatial_{split}.jsonl", "w") as out:
            for line in open(args.src / "data" / f"spatial_{split}.jsonl"):
                record = json.loads(line)
                kind = record["spatial"][0]["type"]
                turns = record["conversations"]
                counts["records"] += 1
                if args.variant in ("marker", "colour-verdict", "short"):
                    rewrite = {"marker": marker, "colour-verdict": colour_verdict, "short": short}[args.variant]
                    for turn in turns[1::2]:  # every answer (held-out records hold several turns)
                        before = turn["value"]
                        turn["value"] = rewrite(before)
                        counts["rewritten"] += turn["value"] != before
                    out.write(json.dumps(record) + "\n")
                    continue
                if split == "test":
                    out.write(line)
                    continue
                if kind in ("distance", "camera_distance") and rng.random() > 1 / args.keep_lengths:
                    counts["dropped"] += 1
                    continue
                out.write(line)
                if kind.endswith("_predicate") and rng.random() < args.given:
                    listing, rest = turns[1]["value"].split(". ", 1)
                    given = json.loads(line)
                    given["id"] += "-given"
                    given["conversations"][0]["value"] = turns[0]["value"].replace(
                        "<image>\n", "<image>\n" + listing + ". ")
                    given["conversations"][1]["value"] = rest
                    out.write(json.dumps(given) + "\n")
                    counts["added"] += 1
    print(counts)


if __name__ == "__main__":
    main()
