#!/usr/bin/env bash
# Usage: bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args...]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR (required with NNODES > 1),
# PORT. The folk package must be installed (make install, or pip install -e .).
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
if [ "$NNODES" -gt 1 ] && [ -z "$MASTER_ADDR" ]; then
    echo "dist_test.sh: NNODES=$NNODES needs MASTER_ADDR (the address of" \
        "the node with NODE_RANK=0, reachable from every node)" >&2
    exit 2
fi
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}

${PYTHON:-python} -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$(dirname "$0")"/test.py \
    "$CONFIG" \
    "$CHECKPOINT" \
    --launcher pytorch \
    "${@:4}"
