"""Run many `quickstart_recipe.py` trainings at once (seeds x variants) and tabulate what each concluded.

One PyTorch run of the quickstart's tiny model is launch-bound on a GPU, so a sweep runs several processes side by
side on one card (or one per core on a CPU). Jobs start in the order given, so put the ones that matter first: at
the deadline the runs still going are stopped, and the table marks them cut. Each job is a line
`NAME ARGS...` (ARGS passed to quickstart_recipe.py, e.g. `base_s1 --seed 1`).

    python3 scripts/recipe_sweep.py /tmp/qs --jobs jobs.txt --parallel 12 --device cuda --deadline 420 --out /tmp/sw

Writes OUT/logs/NAME.log per job, OUT/summary.md (one row per job: the last evaluation, greedy yes/no and "which"
accuracy when the run finished) and OUT/logs.tar.gz. Needs torch + transformers (not run by CI).
"""
import argparse
import json
import shlex
import subprocess
import sys
import tarfile
import time
from pathlib import Path

SCRIPT = Path(__file__).with_name("quickstart_recipe.py")


def last_result(log):
    """The last `== result` record of a log, and how many steps it got through."""
    result, steps = None, 0
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("== result "):
            result = json.loads(line[len("== result "):])
        elif line.startswith("step "):
            steps = int(line.split()[1])
    return result, steps


def summary(jobs, status, elapsed, logs):
    rows = ["| job | args | state | steps | seconds | greedy yes/no | greedy which | listing (tf) | verdict (tf) |"
            " left/right pred (tf) | general (tf) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, args in jobs:
        result, steps = last_result(logs / f"{name}.log") if (logs / f"{name}.log").exists() else (None, 0)
        tf = (result or {}).get("teacher_forced", {})

        def pct(value):
            return "-" if value is None else f"{100 * value:.1f}%"

        lr = [tf[k] for k in ("left_predicate", "right_predicate") if k in tf]
        general = [v for k, v in tf.items() if k.startswith("general_")]
        rows.append(f"| {name} | `{' '.join(args)}` | {status.get(name, 'not started')} | "
                    f"{(result or {}).get('step', steps)} | {elapsed.get(name, 0):.0f} | "
                    f"{pct((result or {}).get('greedy_yes_no'))} | {pct((result or {}).get('greedy_which'))} | "
                    f"{pct(tf.get('seg_listing'))} | {pct(tf.get('seg_verdict'))} | "
                    f"{pct(sum(lr) / len(lr) if lr else None)} | {pct(sum(general) / len(general) if general else None)} |")
    return "\n".join(rows) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("quickstart_dir")
    ap.add_argument("--jobs", type=Path, required=True, help="one job per line: NAME ARGS...")
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--deadline", type=float, default=600, help="seconds; runs still going then are stopped")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    jobs = []
    for line in args.jobs.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, *rest = shlex.split(line)
            jobs.append((name, rest))
    logs = args.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started = time.time()
    queue, running, status, elapsed = list(jobs), {}, {}, {}
    while queue or running:
        while queue and len(running) < args.parallel:
            name, rest = queue.pop(0)
            cmd = [sys.executable, str(SCRIPT), args.quickstart_dir, "--device", args.device, "--threads", "1",
                   "--eval-every", "100000", *rest]
            log = open(logs / f"{name}.log", "w")
            log.write(" ".join(map(str, cmd)) + "\n")
            log.flush()
            running[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), time.time(), log)
            status[name] = "running"
            print(f"[{time.time() - started:5.0f} s] start {name}", flush=True)
        time.sleep(2)
        for name, (proc, t0, log) in list(running.items()):
            if proc.poll() is not None:
                status[name] = "done" if proc.returncode == 0 else f"failed ({proc.returncode})"
                elapsed[name] = time.time() - t0
                log.close()
                del running[name]
                print(f"[{time.time() - started:5.0f} s] {status[name]} {name} ({elapsed[name]:.0f} s)", flush=True)
                (args.out / "summary.md").write_text(summary(jobs, status, elapsed, logs))
        if time.time() - started > args.deadline:
            for name, (proc, t0, log) in running.items():
                proc.kill()
                proc.wait()
                status[name], elapsed[name] = "cut at the deadline", time.time() - t0
                log.close()
            running.clear()
            for name, _ in queue:
                status[name] = "not started (deadline)"
            queue.clear()
    table = summary(jobs, status, elapsed, logs)
    (args.out / "summary.md").write_text(table)
    with tarfile.open(args.out / "logs.tar.gz", "w:gz") as tar:
        tar.add(logs, arcname="logs")
    print(table, flush=True)


if __name__ == "__main__":
    main()
