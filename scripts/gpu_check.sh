#!/usr/bin/env bash
# GPU checks in one go (experiments/gpu.md): the model on a GPU backend against the CPU (f32, bf16, f16),
# forward+backward against PyTorch on the same card, then the quickstart trained on the GPU with as many steps as
# the time budget allows.
#
#   cargo build --release -p svlm-cli --features vulkan
#   bash scripts/gpu_check.sh target/release/svlm vulkan /tmp/gpu_out 420
#
# Arguments: the svlm binary, the device (vulkan, vulkan:0, cuda, ...), an output folder, and the seconds the
# quickstart may take (its steps are sized from a short timed run). Needs python3 with torch + transformers for
# the PyTorch side of the benchmark (skipped otherwise).
set -u
SVLM=${1:?svlm binary}
DEVICE=${2:-vulkan}
OUT=${3:-/tmp/gpu_out}
BUDGET=${4:-420}
mkdir -p "$OUT"
FIX=crates/svlm-model/tests/fixtures
log() { echo "== $* ($(date +%T))"; }

log "devices"
nvidia-smi -L 2>/dev/null || true

log "check-device: tiny Idefics3 and Llama fixtures (parity with transformers on the CPU)"
timeout 120 "$SVLM" check-device --model $FIX/idefics3 --device "$DEVICE" --dtype f32,bf16,f16 \
  --out "$OUT/check_idefics3.json"
timeout 120 "$SVLM" check-device --model $FIX/llama --processor $FIX/idefics3 --device "$DEVICE" \
  --dtype f32,bf16,f16 --out "$OUT/check_llama.json"

log "bench model: forward+backward, hidden 256, 4 layers, seq 256, batch 4"
for dtype in f32 bf16; do
  timeout 150 "$SVLM" bench model --device "$DEVICE" --dtype "$dtype" --iters 10
done

log "quickstart: timing run"
start=$(date +%s)
timeout 200 "$SVLM" quickstart --quiet --device "$DEVICE" --out "$OUT/qs_timing" --ratios 0.5 --steps 200 \
  --train-scenes 1000 --test-scenes 40 > "$OUT/qs_timing.log" 2>&1
timing=$(( $(date +%s) - start ))
tail -5 "$OUT/qs_timing.log"
# The timing run's fixed cost (data, tokenizer, evaluation) is taken as 30 s; the two runs of the real one train
# side by side on the GPU, so its steps fill the budget less that fixed cost (90 s, more scenes and questions).
per_step=$(python3 -c "print(max(0.005, ($timing - 30) / 200))")
steps=$(python3 -c "print(int(max(200, min(20000, ($BUDGET - 90) / $per_step))))")
scenes=$(python3 -c "print(max(6000, min(60000, $steps * 64 // 12)))")
log "quickstart: $steps steps per run, $scenes training scenes (timing run: $timing s for 200 steps)"
timeout $((BUDGET + 90)) "$SVLM" quickstart --quiet --device "$DEVICE" --out "$OUT/qs" --steps "$steps" \
  --train-scenes "$scenes" --jobs 2 > "$OUT/qs.log" 2>&1
tail -20 "$OUT/qs.log"
cat "$OUT/qs/report.md" 2>/dev/null | head -60

log "check-device: the GPU-trained quickstart model"
ckpt=$(ls -d "$OUT"/qs/runs/*0.5*/checkpoint-* 2>/dev/null | sort -V | tail -1)
if [ -n "$ckpt" ]; then
  timeout 120 "$SVLM" check-device --model "$ckpt" --processor "$OUT/qs/model" --device "$DEVICE" \
    --dtype f32,bf16 --out "$OUT/check_quickstart.json"
fi
log "done"
