#!/usr/bin/env bash
# Usage: [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=10] [SRUN_ARGS=...] \
#        bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [args...]
# CPUS_PER_TASK: the configs' 8 data workers per GPU, the main process and
# its pin-memory thread (docs/get_started.md); with fewer cores lower
# train_dataloader.num_workers to match. WORK_DIR must be on a filesystem
# shared by all nodes. The folk package must be installed (make install, or
# pip install -e .).
set -x
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-10}
SRUN_ARGS=${SRUN_ARGS:-""}
PY_ARGS=("${@:5}")
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}

# SRUN_ARGS is split on spaces on purpose (several srun options)
# shellcheck disable=SC2086
srun -p "${PARTITION}" \
    --job-name="${JOB_NAME}" \
    --gres=gpu:"${GPUS_PER_NODE}" \
    --ntasks="${GPUS}" \
    --ntasks-per-node="${GPUS_PER_NODE}" \
    --cpus-per-task="${CPUS_PER_TASK}" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    ${PYTHON:-python} -u "$(dirname "$0")"/train.py "${CONFIG}" \
    --work-dir="${WORK_DIR}" --launcher="slurm" "${PY_ARGS[@]}"
