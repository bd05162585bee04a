#!/usr/bin/env bash
# Every GPU check and benchmark of the project in one run (about 10
# minutes on an H100/H200). Run on the device machine from the repository
# root with .device/ carried (benchmarks/gpu_bundle.sh); results go to
# $OUT (default benchmarks/results/gpu).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
if ! python -c "import mmpretrain" 2>/dev/null; then
  python -m pip install -q --no-index --no-deps --target .device/site \
      .device/wheels/*.whl
  export PYTHONPATH=$PWD/.device/site:$PWD/projects:${PYTHONPATH:-}
fi
mkdir -p data && cp -n .device/data/*.zip data/ 2>/dev/null || true
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
set -x
# CUDA equals CPU for the filters; a bf16 FOLK step gives finite losses
python - <<'PY' 2>&1 | tee "$OUT/cuda_checks.txt"
import sys, torch
sys.path.insert(0, 'projects'); sys.path.insert(0, 'tests/test_models')
import folk
from folk.frequency import filter_images
x = torch.rand(16, 3, 224, 224)
kind = torch.tensor([0, 1, 2, 3] * 4); param = torch.tensor([0.01, 0.05, 16., 16.] * 4)
fc, kc = filter_images(x, kind, param)
fg, kg = filter_images(x.cuda(), kind, param)
print('keep masks equal:', torch.equal(kc, kg.cpu()),
      'max |cpu - cuda|:', (fc - fg.cpu()).abs().max().item())
from _tiny import build, make_batch, set_schedule
from mmengine.optim import AmpOptimWrapper
set_schedule()
model = build().cuda()
optim = AmpOptimWrapper(optimizer=torch.optim.AdamW(model.parameters()),
                        dtype='bfloat16', loss_scale=dict(enabled=False))
for _ in range(3):
    log = model.train_step(make_batch(), optim)
print('bf16 FOLK step losses:', {k: float(v) for k, v in log.items()})
PY
python benchmarks/frequency_throughput.py --out "$OUT/frequency_throughput.json"
python benchmarks/pretrain_throughput.py --arch b --batch 128 \
    --methods supervised,mfm,folk,mae \
    --out "$OUT/pretrain_throughput_vit-b_bf16.json"
python benchmarks/pretrain_throughput.py --arch b --batch 128 --compile \
    --methods supervised,folk --out "$OUT/pretrain_throughput_vit-b_bf16_compile.json"
python benchmarks/imagenette_study.py --out-dir "$OUT"
