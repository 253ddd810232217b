#!/usr/bin/env bash
# Train on this machine with every device it has (all its GPUs, or the CPU), one process.
#
#   launch/local.sh CONFIG WORKDIR [more flags]
#   launch/local.sh configs/rf70_patches.py runs/rf70 --config.data.data_dir=data/maps
#   CUDA_VISIBLE_DEVICES=0,1 launch/local.sh configs/b4_patches.py runs/b4   # some GPUs only
#
# The global batch (config.batch_size) is split over the devices, so it must be a multiple of
# their number. Run the same command again to resume from WORKDIR's newest checkpoint.
set -euo pipefail
if [[ $# -lt 2 ]]; then
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
config=$1 workdir=$2
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$([[ -x $root/.venv/bin/python ]] && echo "$root/.venv/bin/python" || echo python3)}
# glibc otherwise unmaps and re-faults XLA's large temporary buffers every step (NOTES.md).
export GLIBC_TUNABLES=${GLIBC_TUNABLES:-glibc.malloc.hugetlb=1}
exec "$python" -m p2p.main --config="$config" --workdir="$workdir" "$@"
