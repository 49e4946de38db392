#!/usr/bin/env bash
# The whole GPU check in one command (≤ 8 min on one H100): installs the wheels of `make gpu-wheels` into a temp
# site folder, prints the GPU, driver and versions, runs the GPU tests (pytest -m gpu), `talkfreq bench` at 256 and
# 512 px end to end with the refiner, and benchmarks/train_throughput.py, then prints one summary table.
# Every part runs under its own time cap, so a hang costs that part only. Files go to $OUT when it is set, else to
# outputs/gpu_check/: gpu_check.log, summary.json, pytest.xml, bench_256.json, bench_512.json, train.json.
#
#   bash benchmarks/gpu_check.sh            # on a CUDA machine (your own: PYTHON=.venv/bin/python)
#   bash benchmarks/gpu_check.sh --dry-run  # the same steps on the CPU with tiny sizes (tests/test_gpu_check.py)
#
# PYTHON (default python3), GPU_CHECK_WHEELS (default .whl; no wheels there: the environment as it is),
# GPU_CHECK_ONLY (e.g. "bench512 train": only those of tests, bench256, bench512, train; to rerun what failed).
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
DRY=0
case "${1:-}" in
  --dry-run) DRY=1 ;;
  "") ;;
  *) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
esac
PY=${PYTHON:-python3}
WHEELS=${GPU_CHECK_WHEELS:-.whl}
DEST=${OUT:-outputs/gpu_check}
mkdir -p "$DEST" && DEST=$(cd "$DEST" && pwd)
WORK=$(mktemp -d /tmp/talkfreq-gpu-check.XXXXXX)
exec 3>&1 4>&2 > >(tee "$DEST/gpu_check.log") 2>&1
TEE=$!
# the carried packages shadow the machine's; the repo's source shadows any installed talkfreq
export PYTHONPATH=$REPO/src:$WORK/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 MPLCONFIGDIR=$WORK/mpl
((DRY)) && touch "$WORK/dry_run"

part() {  # NAME CAP COMMAND...: COMMAND under a time cap (the whole process group is killed), its exit status noted
  local name=$1 cap=$2 start rc
  shift 2
  case " install info clip ${GPU_CHECK_ONLY:-$name} " in
    *" $name "*) ;;
    *) echo "=== $name: not in GPU_CHECK_ONLY"; return ;;
  esac
  echo "=== $name (cap ${cap} s): $*"
  start=$EPOCHREALTIME
  timeout -k 10 "$cap" "$@"
  rc=$?
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$rc" "$start" "$EPOCHREALTIME" "$cap" >>"$WORK/parts.tsv"
}

install_wheels() {
  shopt -s nullglob
  local wheels=("$WHEELS"/*.whl)
  if ((${#wheels[@]} == 0)); then
    echo "no wheels in $WHEELS: this environment's packages as they are"
    return 0
  fi
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" \
    "${wheels[@]}" && echo "installed ${#wheels[@]} wheels into $WORK/site: ${wheels[*]##*/}"
}
export -f install_wheels
export PY WHEELS WORK

if ((DRY)); then
  CLIP=(--seconds 1 --size 128)
  TESTS=()
  BENCH=(--tiny --quick --device cpu --batches 1 --seconds 0.2 --threads 1 max_seconds=0.02)
  TRAIN=(--tiny --batch 2 --steps 1 --warmup 1)
else
  CLIP=(--seconds 8 --size 512)
  TESTS=(--timeout 90)  # one hanging test leaves the others their time
  # one batch size: each size is one more compilation of every network, and the caps are tight
  BENCH=(--batches 32 --seconds 8 max_seconds=3 "e2e_batches=[best]")
  TRAIN=(--no-cpu --precision bf16-mixed --steps 5 --warmup 2)
fi

part install 30 bash -c install_wheels
part info 30 "$PY" benchmarks/gpu_check.py info "$WORK/info.json"
part clip 20 "$PY" benchmarks/gpu_check.py video "$WORK/clip.mp4" --wheels "$WHEELS" "${CLIP[@]}"
part tests 120 "$PY" -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider --junitxml="$DEST/pytest.xml" \
  "${TESTS[@]}"
for size in 256 512; do
  part "bench$size" 120 "$PY" -m talkfreq.cli bench --pipelines "FREAK-$size" --video "$WORK/clip.mp4" \
    --json "$DEST/bench_$size.json" "${BENCH[@]}"
done
part train 40 "$PY" benchmarks/train_throughput.py --json "$DEST/train.json" "${TRAIN[@]}"

"$PY" benchmarks/gpu_check.py summary "$WORK" "$DEST"
rc=$?
rm -rf "$WORK"
# the table is the output's last lines: let tee write them before the script (and with it, the call) ends
exec 1>&3 2>&4 3>&- 4>&-
wait "$TEE" 2>/dev/null
exit $rc
