#!/usr/bin/env bash
# Issue 6's open GPU figures in one prepared device call: the whole training loop at batch 1
# with the device-resident data path (float32 and bfloat16) and with the Grain pipeline, each
# with 137 steps per call, on 1096 synthetic 1200x600 maps pairs (the real split's count and
# size; the real data is too big to carry). ~5 min on an H200 after the machine's start.
#
# Here, once (needs the package registry; the device image lacks these four):
#   grep -qx '/.whl/' .git/info/exclude || echo /.whl/ >> .git/info/exclude
#   bash benchmarks/gpu_check.sh fetch
# Then the device tool: run(command="bash benchmarks/gpu_check.sh device", carry=[".whl"],
#   timeout_s=540). JSON lines come back in $OUT/gpu_check.jsonl, phases in $OUT/gpu_check.log.
# CPU smoke of the device branch (the project's .venv has the packages, so no wheels):
#   GPU_CHECK_TRAIN=8 GPU_CHECK_K=2 GPU_CHECK_STEPS=4 GPU_CHECK_CONFIG=configs/demo.py \
#     GPU_CHECK_LIMIT=200 OUT=/tmp/gpu_check PATH=$PWD/.venv/bin:$PATH \
#     bash benchmarks/gpu_check.sh device
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=(grain==0.2.18 ml-collections==1.1.0 dm-pix==0.4.5 portpicker==1.6.0)
TRAIN=${GPU_CHECK_TRAIN:-1096}       # synthetic training pairs (8 generators, 137 each)
K=${GPU_CHECK_K:-137}                # steps per call (1096 * 4 tiles = 32 calls of 137)
STEPS=${GPU_CHECK_STEPS:-8220}       # timed loop steps per run (~27 s at 300 it/s)
CONFIG=${GPU_CHECK_CONFIG:-configs/rf70_patches.py}
LIMIT=${GPU_CHECK_LIMIT:-160}        # seconds per run before it is stopped (SIGTERM)

fetch() {
  local platforms=()
  for n in 28 27 17; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${platforms[@]}" --platform manylinux2014_x86_64 \
    --platform any -d .whl "${WHEELS[@]}"
  ls -1 .whl
}

device() {
  local out=${OUT:-/tmp/gpu_check}
  mkdir -p "$out"
  local log=$out/gpu_check.log json=$out/gpu_check.jsonl
  if ! python3 -c 'import grain, ml_collections, dm_pix' 2> /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site
  fi
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
  { date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true
    python3 -c 'import jax; print("jax", jax.__version__, jax.devices())'; } >> "$log" 2>&1
  local data=/tmp/gpu_check_maps
  synthetic "$data" >> "$log" 2>&1
  local common=(--data_dir="$data" --config="$CONFIG" --steps_per_call="$K" --warmup="$K"
                --steps="$STEPS" --log_every="$K" --json)
  run resident_float32 "${common[@]}" --resident
  run resident_bfloat16 "${common[@]}" --resident --dtype=bfloat16
  run grain8_float32 "${common[@]}" --worker_count=8 --num_threads=16 --prefetch=64
  date -u >> "$log"
}

synthetic() {  # DIR: $TRAIN train pairs and 8 val pairs, made by 8 generators in parallel
  local dir=$1 per=$(( (TRAIN + 7) / 8 )) s i n=0
  rm -rf "$dir" "$dir".*
  for s in $(seq 0 7); do
    python3 -m p2p.data.synthetic --out "$dir.$s" --train "$per" --val $((s ? 0 : 8)) \
      --seed "$s" &
  done
  wait
  mkdir -p "$dir/train"
  mv "$dir.0/val" "$dir/val"
  for s in $(seq 0 7); do
    for i in $(seq 1 "$per"); do
      n=$((n + 1))
      [[ $n -le $TRAIN ]] && mv "$dir.$s/train/$i.jpg" "$dir/train/$n.jpg"
    done
    rm -rf "$dir.$s"
  done
  echo "$(ls "$dir/train" | wc -l) train pairs in $dir"
}

run() {  # NAME ARGS...: one epoch.py run, its JSON line tagged with NAME; a stall is logged
  local name=$1; shift
  echo "== $name: $(date -u +%T)" >> "$log"
  local line rc=0
  line=$(timeout -s TERM "$LIMIT" python3 benchmarks/epoch.py "$@" 2>> "$log") || rc=$?
  if [[ $rc -eq 0 && -n $line ]]; then
    echo "{\"run\": \"$name\", ${line#\{}" | tee -a "$json"
  else
    echo "$name: rc $rc (124 = stopped after ${LIMIT} s), no JSON" | tee -a "$log"
  fi
}

case "${1:-}" in
  fetch) fetch ;;
  device) device ;;
  *) echo "usage: bash benchmarks/gpu_check.sh fetch|device (see the header)" >&2; exit 2 ;;
esac
