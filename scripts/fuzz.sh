#!/usr/bin/env bash
# Fuzz the parsers that read outside data with libFuzzer, on the stable toolchain.
#
#   scripts/fuzz.sh SECONDS [TARGET...]     # every target of fuzz/Cargo.toml when none is named
#
# The targets in fuzz/ are built with LLVM's SanitizerCoverage (what cargo-fuzz does without a sanitizer, plus
# debug assertions and overflow checks) for the host target, so that build scripts and proc macros stay
# uninstrumented. Each target runs SECONDS seconds on a fresh copy of fuzz/seeds/<target>/ plus
# fuzz/regressions/<target>/ (inputs that once crashed or hung it; tests/hostile_parsers.rs checks them too), with
# a 2 GiB RSS limit (an input that makes a parser allocate without bound ends the run) and 10 s per input. A crash
# leaves its input in target/fuzz/artifacts/<target>/ and fails the script. One line per target counts its
# executions.
# CI runs this for a few seconds per target; experiments/reliability.md has the long runs.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:?usage: scripts/fuzz.sh SECONDS [TARGET...]}
shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^svlm-fuzz$')
fi

host=$(rustc -vV | sed -n 's/^host: //p')
out=../target/fuzz
export CARGO_TARGET_DIR=$out
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
cargo build --locked --release --target "$host" --features heavy --bins

failed=()
for t in "${targets[@]}"; do
  corpus=$(mktemp -d)
  cp -r "seeds/$t/." "$corpus/"
  # Inputs that once crashed or hung a target run first with the seeds (libFuzzer reads the corpus before mutating).
  if [ -d "regressions/$t" ]; then cp -r "regressions/$t/." "$corpus/"; fi
  mkdir -p "$out/artifacts/$t"
  log="$out/artifacts/$t/last-run.log"
  if "$out/$host/release/$t" "$corpus" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
      -artifact_prefix="$out/artifacts/$t/" -print_final_stats=1 >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "fuzz $t: ${runs:-?} executions in ${seconds} s, no crash"
  else
    echo "fuzz $t: FAILED; input and log in $out/artifacts/$t/"
    grep -E "panicked at|ERROR: libFuzzer|^SUMMARY" "$log" | head -5 || true
    failed+=("$t")
  fi
  rm -rf "$corpus"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz targets that crashed: ${failed[*]}"
  exit 1
fi
