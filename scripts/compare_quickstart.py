#!/usr/bin/env python3
"""Compare two `svlm quickstart` output folders, apart from what measures time.

Used to show that a change leaves results unchanged: run the quickstart twice with the same seed on the same
machine (once per build), then

    python3 scripts/compare_quickstart.py BEFORE AFTER

Every file must exist in both. Each folder's own path is replaced by `<out>` in text files. JSON and JSONL files are compared after dropping the fields that measure time or
memory (seconds, throughput, step time, RSS); Markdown and logs after masking those numbers; every other file
(weights, images, data shards, Parquet) byte for byte. TensorBoard event files are skipped: their names and records
carry wall-clock times, and their scalars are the ones in metrics.jsonl. Exit status 1 if anything else differs.
"""

import json
import re
import sys
from pathlib import Path

TIMING_KEYS = {
    "seconds",
    "total_seconds",
    "model_seconds",
    "train_seconds",
    "eval_seconds",
    "step_time_s",
    "samples_per_s",
    "tokens_per_s",
    "supervised_tokens_per_s",
    "rss_mb",
    "peak_rss_mb",
    "wall_s",
    "elapsed_s",
}

# Numbers followed by a time or memory unit, and throughput cells of the run tables.
TIMING_TEXT = [
    re.compile(r"\d+(\.\d+)?\s?(s|ms|min|minutes|MiB)\b"),
    re.compile(r"samples/s: [\d.]+, tokens/s: [\d.]+, supervised tokens/s: [\d.]+"),
    re.compile(r"[\d.]+ samples/s, [\d.]+ tokens/s"),
    re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+Z"),
]


def strip_timing(value):
    if isinstance(value, dict):
        return {k: strip_timing(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [strip_timing(v) for v in value]
    return value


def normalized_text(text: str) -> list[str]:
    lines = []
    for line in text.splitlines():
        for pattern in TIMING_TEXT:
            line = pattern.sub("<t>", line)
        lines.append(line)
    return lines


def table_timing_columns(lines: list[str]) -> list[str]:
    """Masks the cells of Markdown table columns whose header names a time or a rate."""
    out, timing = [], set()
    for line in lines:
        if line.startswith("|"):
            cells = line.split("|")
            if not timing and any(c.strip() in ("train", "samples/s", "eval", "time") for c in cells):
                timing = {i for i, c in enumerate(cells) if c.strip() in ("train", "samples/s", "eval", "time")}
            cells = ["<t>" if i in timing else c for i, c in enumerate(cells)]
            line = "|".join(cells)
        else:
            timing = set()
        out.append(line)
    return out


TEXT = (".json", ".jsonl", ".md", ".log", ".toml", ".csv", ".txt")


def same(a: Path, root_a: Path, b: Path, root_b: Path) -> bool:
    if a.suffix not in TEXT:
        return a.read_bytes() == b.read_bytes()
    ta = a.read_text().replace(str(root_a.resolve()), "<out>")
    tb = b.read_text().replace(str(root_b.resolve()), "<out>")
    if a.suffix == ".json":
        return strip_timing(json.loads(ta)) == strip_timing(json.loads(tb))
    if a.suffix == ".jsonl":
        rows = lambda t: [strip_timing(json.loads(l)) for l in t.splitlines() if l.strip()]
        return rows(ta) == rows(tb)
    if a.suffix in (".md", ".log"):
        return table_timing_columns(normalized_text(ta)) == table_timing_columns(normalized_text(tb))
    return ta == tb


def files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*") if p.is_file() and "tb" not in p.relative_to(root).parts}


def main() -> int:
    before, after = Path(sys.argv[1]), Path(sys.argv[2])
    fa, fb = files(before), files(after)
    problems = [f"only in {before}: {p}" for p in sorted(fa - fb)]
    problems += [f"only in {after}: {p}" for p in sorted(fb - fa)]
    common = sorted(fa & fb)
    problems += [f"differs: {p}" for p in common if not same(before / p, before, after / p, after)]
    for line in problems:
        print(line)
    print(f"{len(common)} files in both, {len(problems)} differences apart from timing")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
