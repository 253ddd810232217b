#!/usr/bin/env bash
# P training processes on this machine, joined over loopback with CPU collectives (gloo): the
# multi-host code path (jax.distributed, per-process data shards, Orbax on every process)
# without a cluster.
#
#   launch/multiprocess_cpu.sh P CONFIG WORKDIR [more flags]
#   launch/multiprocess_cpu.sh 2 configs/rf70_resize.py:tiny /tmp/mp --config.batch_size=2
#
# config.batch_size is the global batch: a multiple of P. SIGTERM/SIGINT to this script go to
# every process (they stop at the same step and checkpoint); the exit status is the first
# failure's, and each process that failed is named. A process that is killed makes the others
# stop within --peer_timeout (docs/training.md). Run it again to resume. P2P_PORT picks the
# coordinator port (default: a free one).
set -uo pipefail
if [[ $# -lt 3 ]]; then
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
processes=$1 config=$2 workdir=$3
shift 3
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$([[ -x $root/.venv/bin/python ]] && echo "$root/.venv/bin/python" || echo python3)}
port=${P2P_PORT:-$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
pids=()
for ((i = 0; i < processes; i++)); do
  JAX_PLATFORMS=cpu "$python" -m p2p.main --config="$config" --workdir="$workdir" \
    --coordinator_address="127.0.0.1:$port" --num_processes="$processes" --process_id="$i" \
    "$@" &
  pids+=($!)
done
trap 'kill -TERM "${pids[@]}" 2>/dev/null' TERM INT
status=0 i=0
for pid in "${pids[@]}"; do
  while true; do
    wait "$pid"
    code=$?
    kill -0 "$pid" 2>/dev/null || break  # still running: wait was cut short by a signal
  done
  if [[ $code -ne 0 ]]; then
    why="exited with status $code"
    ((code > 128)) && why="was ended by SIG$(kill -l $((code - 128)))"
    echo "launch: process $i (pid $pid) $why" >&2
    [[ $status -eq 0 ]] && status=$code
  fi
  i=$((i + 1))
done
exit $status
