#!/usr/bin/env bash
# A recipe sweep on a GPU machine that has PyTorch but no Rust toolchain: unpack a prebuilt `svlm` (xz), let it
# write the quickstart's data and model config, stop it before training, then run scripts/recipe_sweep.py.
#   bash scripts/gpu_recipe_sweep.sh SVLM.xz JOBS OUT PARALLEL DEADLINE_S [PREP]
# PREP, a bash file, is sourced once the data is written (with $qs set, /tmp/svlm ready and quickstart_data
# defined): it can write a validation set or data variants that the jobs name with --train-dir
# (experiments/sweeps/session8/prep_*.sh).
set -euo pipefail
svlm_xz=$1 jobs=$2 out=$3 parallel=$4 deadline=$5 prep=${6:-}
export PYTHONUNBUFFERED=1
python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open('/tmp/svlm', 'wb'))" "$svlm_xz"
chmod +x /tmp/svlm
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())"
qs=/tmp/qs
# Writes a quickstart folder's data and model (svlm quickstart stopped before training): OUT LOG [ARGS...]
quickstart_data() {
  local dir=$1 log=$2
  shift 2
  /tmp/svlm quickstart --out "$dir" --ratios 0.5 --quiet "$@" > "$log" 2>&1 &
  local pid=$!
  for _ in $(seq 600); do
    grep -q '^\[3/4\]' "$log" && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.5
  done
  kill $pid 2>/dev/null || true
  head -5 "$log"
}
quickstart_data "$qs" /tmp/qs.log
md5sum "$qs"/data/spatial_train.jsonl "$qs"/model/tokenizer.json
if [ -n "$prep" ]; then
  # shellcheck source=/dev/null
  source "$prep"
fi
mkdir -p "$out"
python3 scripts/recipe_sweep.py "$qs" --jobs "$jobs" --parallel "$parallel" --device cuda --deadline "$deadline" \
  --out "$out"
