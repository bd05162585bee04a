#!/usr/bin/env bash
# The project's GPU checks and benchmarks, as two commands of at most ~5
# minutes each on one H100 / H200:
#
#   bash benchmarks/gpu_checks.sh quick   # CUDA checks + throughput
#   bash benchmarks/gpu_checks.sh study   # the Imagenette study, short
#   bash benchmarks/gpu_checks.sh --dry-run quick   # same steps, CPU, tiny
#
# Run from anywhere; it works in the repository root. On a GPU machine
# without registry access carry .device/ (made by benchmarks/gpu_bundle.sh):
# its wheels are installed once into .device/site (skipped when already
# there) and PYTHONPATH is set once for every step. A bundle built for
# another Python version is not used (the install step says so).
# DEVICE_DIR names another bundle folder.
#
# Every step runs under `timeout` (its own cap, and never past the
# command's budget BUDGET_S, default 290 s) and, as soon as it ends, its
# output is appended to $OUT/gpu_checks_<command>.log and its outcome and
# numbers to $OUT/gpu_checks_<command>.json (rewritten atomically), so a
# killed run still returns what finished. Files written to $OUT: 2 per
# command, plus the study's .json/.md/.png (7 in all). $OUT defaults to
# benchmarks/results/gpu (work_dirs/gpu_checks_dry_run with --dry-run).
#
# Exit status: 0 when every step passed, else 10 + the number of the first
# step that failed, timed out or did not fit the budget; the last line
# names it. Steps: quick: 1 install, 2 env, 3 cuda_checks,
# 4 frequency_throughput, 5 pretrain_throughput, 6 pretrain_throughput_compile;
# study: 1 install, 2 env, 3 imagenette_study (benchmarks/study/run_study.py).
# Environment: PYTHON (default python3), OUT, BUDGET_S.
set -uo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; }
DRY=0
CMD=
for arg in "$@"; do
  case $arg in
    --dry-run) DRY=1 ;;
    quick | study) CMD=$arg ;;
    -h | --help) usage; exit 0 ;;
    *) echo "gpu_checks.sh: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
  esac
done
if [ -z "$CMD" ]; then
  echo 'gpu_checks.sh: name a command: quick or study' >&2; usage >&2; exit 2
fi
PY=${PYTHON:-python3}
BUDGET=${BUDGET_S:-290}
if [ "$DRY" = 1 ]; then OUT=${OUT:-work_dirs/gpu_checks_dry_run}
else OUT=${OUT:-benchmarks/results/gpu}; fi
mkdir -p "$OUT"
LOG=$OUT/gpu_checks_$CMD.log
JSON=$OUT/gpu_checks_$CMD.json
SCRATCH=$(mktemp -d)  # the steps' own reports, folded into $JSON
trap 'rm -rf "$SCRATCH"' EXIT
DEVICE=${DEVICE_DIR:-$PWD/.device}
SITE=$DEVICE/site
# the carried wheels are used only when built for this Python
BUNDLE=0 BUNDLE_NOTE='no .device/wheels, or already in .device/site'
if [ -d "$DEVICE/wheels" ]; then
  TAG=$("$PY" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
  OTHER=$(ls "$DEVICE/wheels" | grep -E -- '-cp3[0-9]+-' | grep -v -- '-abi3-' \
    | grep -v -- "-$TAG-" | head -n 1)
  if [ -n "$OTHER" ]; then
    BUNDLE_NOTE="$DEVICE/wheels is built for another Python ($OTHER; this is $TAG): not used"
  else
    BUNDLE=1
  fi
fi
# set once, for every step (the wheels are installed below if needed)
[ "$BUNDLE" = 1 ] && export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
export PYTHONPATH=$PWD/projects:$PWD/tests/test_models${PYTHONPATH:+:$PYTHONPATH}
: > "$LOG"
echo "gpu_checks $CMD (dry run: $DRY) $(date -u +%FT%TZ), budget ${BUDGET}s" \
  | tee -a "$LOG"
$PY benchmarks/gpu_checks.py record --json "$JSON" --start \
  --command "$CMD" --dry-run "$DRY" || exit 2

INDEX=0
FIRST_FAIL=
FIRST_INDEX=0
# record INDEX NAME RC SECONDS STATUS NOTE CMDLINE [RESULT_PATH]
record() {
  $PY benchmarks/gpu_checks.py record --json "$JSON" --index "$1" \
    --step "$2" --rc "$3" --seconds "$4" ${5:+--status "$5"} \
    ${6:+--note "$6"} --cmd "$7" --result "$SCRATCH/$2.json" \
    ${8:+--result-path "$8"} >> "$LOG" 2>&1
  if [ "$3" != 0 ] && [ "$5" != 'not needed' ] && [ -z "$FIRST_FAIL" ]; then
    FIRST_FAIL=$2; FIRST_INDEX=$1
  fi
}
# step NAME CAP_SECONDS COMMAND... : run under timeout, log, record
step() {
  local name=$1 cap=$2 limit rc start
  shift 2
  INDEX=$((INDEX + 1))
  limit=$((BUDGET - SECONDS))
  [ "$cap" -lt "$limit" ] && limit=$cap
  if [ "$limit" -lt 5 ]; then
    echo "=== [$INDEX] $name: skipped, out of the ${BUDGET}s budget" \
      | tee -a "$LOG"
    record "$INDEX" "$name" 1 0 skipped 'out of time budget' "$*"
    return
  fi
  echo "=== [$INDEX] $name (timeout ${limit}s): $*" | tee -a "$LOG"
  start=$SECONDS
  timeout --kill-after=10 "$limit" "$@" >> "$LOG" 2>&1
  rc=$?
  echo "=== [$INDEX] $name: rc $rc in $((SECONDS - start))s" | tee -a "$LOG"
  record "$INDEX" "$name" "$rc" "$((SECONDS - start))" '' '' "$*" "${RESULT_PATH:-}"
}

# 1 install: the carried wheels, once per machine
if [ "$BUNDLE" = 1 ] && [ ! -d "$SITE/mmpretrain" ]; then
  step install 120 "$PY" -m pip install -q --no-index --no-deps \
    --target "$SITE" "$DEVICE"/wheels/*.whl
else
  INDEX=1
  record 1 install 0 0 'not needed' "$BUNDLE_NOTE" ''
fi
# 2 env: versions, GPU
step env 60 "$PY" benchmarks/gpu_checks.py env --out "$SCRATCH/env.json"

if [ "$CMD" = quick ]; then
  if [ "$DRY" = 1 ]; then
    DEV=cpu; SIZE=32
    FREQ=(--sizes 32 --batch 4 --iters 1 --warmup 1 --device cpu)
    THRU=(--arch nano --img-size 32 --patch 8 --batch 2 --out-dim 64
          --iters 1 --warmup 1 --device cpu)
    EAGER=supervised,mfm,folk
    COMPILE=(--compile --compile-backend eager --methods supervised,folk)
  else
    DEV=cuda; SIZE=224
    # CUDA rows only: the CPU rows are measured on CPU machines
    FREQ=(--sizes 224 --batch 128 --iters 10 --warmup 3 --device cuda)
    THRU=(--arch b --batch 128 --iters 20 --warmup 5)
    EAGER=supervised,mfm,folk,mae
    COMPILE=(--compile --methods supervised,folk --iters 10 --warmup 3)
  fi
  step cuda_checks 90 "$PY" benchmarks/gpu_checks.py checks --device "$DEV" \
    --size "$SIZE" --out "$SCRATCH/cuda_checks.json"
  step frequency_throughput 60 "$PY" benchmarks/frequency_throughput.py \
    "${FREQ[@]}" --out "$SCRATCH/frequency_throughput.json"
  step pretrain_throughput 100 "$PY" benchmarks/pretrain_throughput.py \
    "${THRU[@]}" --methods "$EAGER" --out "$SCRATCH/pretrain_throughput.json"
  step pretrain_throughput_compile 170 "$PY" benchmarks/pretrain_throughput.py \
    "${THRU[@]}" "${COMPILE[@]}" \
    --out "$SCRATCH/pretrain_throughput_compile.json"
else
  if [ -d "$DEVICE/data" ]; then  # the carried data packs
    mkdir -p data && cp -n "$DEVICE"/data/*.zip data/
  fi
  # the study writes its .json / .md / .png after every run (variant x
  # seed): a run stopped by the timeout keeps the finished ones
  if [ "$DRY" = 1 ]; then
    STUDY_ARGS=(--preset smoke --variants scratch,folk --seeds 1 --device cpu)
  else
    # folk and mfm first: a run cut by the budget keeps FOLK vs MFM
    STUDY_ARGS=(--preset gpu --variants folk,mfm,scratch --seeds 1
                --set epochs=10 linear_epochs=30 ft10_epochs=15
                ft100_epochs=4 seg_iters=200)
  fi
  RESULT_PATH=$OUT/imagenette_study_gpu_short.json
  # >>> the study's command line (its owner may move the script or add a
  # short GPU preset: change this one line) <<<
  step imagenette_study 280 "$PY" benchmarks/study/run_study.py "${STUDY_ARGS[@]}" --out-dir "$OUT" --prefix imagenette_study_gpu_short --work-dir "$SCRATCH/study"
  RESULT_PATH=
fi

$PY benchmarks/gpu_checks.py record --json "$JSON" --finish
if [ -n "$FIRST_FAIL" ]; then
  echo "gpu_checks $CMD: FAILED at step $FIRST_INDEX '$FIRST_FAIL'" \
    "(see $LOG and $JSON)" | tee -a "$LOG"
  exit $((10 + FIRST_INDEX))
fi
echo "gpu_checks $CMD: all steps passed ($JSON)" | tee -a "$LOG"
