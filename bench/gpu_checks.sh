#!/usr/bin/env bash
# Every GPU check of issue 23 in one call of under 10 minutes (one NVIDIA GPU; CUDA torch installed).
#
#     OUT=/tmp/gpu bash bench/gpu_checks.sh          # writes $OUT/gpu_checks.log (and prints it)
#
# 1. CUDA and mixed precision work: the CUDA-marked paths of physadv (a sticker and a patch step with
#    AMP) run and give finite losses.
# 2. The model-bound step (targets): a person-patch step against yolov8s.yaml, batch 32 at 640, spends
#    >= 85 % of its time in the detector's forward and backward (bench/patch_step.py); a classifier
#    sticker step reaches >= 10,000 views/s (bench/sticker_step.py, which also times the views rendered
#    one at a time, as before, against the batched rendering, same views and face); `physadv eval`
#    reaches >= 0.9x the decode-only rate (bench/replay_fps.py).
# 3. torchrun on one GPU: the data-parallel sticker with NCCL, --nproc-per-node 1, a few steps.
# Each part has its own time limit so that one slow part cannot eat the others' time.
set -uo pipefail
OUT=${OUT:-/tmp/physadv-gpu}
mkdir -p "$OUT"
LOG="$OUT/gpu_checks.log"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python}
run() {  # run LIMIT_S TITLE COMMAND...: one part, its time and exit status in the log
    local limit=$1 title=$2
    shift 2
    echo "=== $title ($(date -u +%T), limit ${limit}s)" | tee -a "$LOG"
    local start=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee -a "$LOG"
    echo "=== $title: exit ${PIPESTATUS[0]} in $((SECONDS - start)) s" | tee -a "$LOG"
}

run 20 "machine" bash -c "nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; \
$PY -c 'import torch, kornia, ultralytics; print(torch.__version__, torch.version.cuda, \
torch.cuda.get_device_name(0), kornia.__version__, ultralytics.__version__)'"
run 45 "scene for replay" $PY -m physadv scene render scenes/driveby_stop.yaml --out "$OUT/driveby"
run 85 "sticker step, classifier (views/s; target >= 10000; rendering one view at a time vs batched)" \
    $PY bench/sticker_step.py --device cuda --batches 128,512,2048 --steps 10 --compare-steps 2
run 35 "sticker step, classifier, AMP" $PY bench/sticker_step.py --device cuda --amp --batches 512,2048 --steps 10 \
    --compare-steps 1
run 45 "sticker step, detector" $PY bench/sticker_step.py --task detect --device cuda --batches 32,128 --steps 5
run 45 "people to attack" $PY -m physadv scene dataset --task persons --out "$OUT/persons" --train 64 --val 8
run 120 "patch step, yolov8s.yaml batch 32 at 640 (detector share; target >= 85 %)" \
    $PY bench/patch_step.py "$OUT/persons/images/train" --model yolov8s.yaml --batches 32 --sizes 640 \
    --steps 5 --device cuda
run 45 "patch step, AMP" $PY bench/patch_step.py "$OUT/persons/images/train" --model yolov8s.yaml \
    --batches 32 --sizes 640 --steps 5 --device cuda --amp
run 90 "replay against decode-only (target >= 0.9x)" \
    $PY bench/replay_fps.py "$OUT/driveby/scene.mp4" --device cuda --batch 32 --rounds 1
run 60 "torchrun, one GPU, NCCL: sticker" torchrun --standalone --nproc-per-node 1 -m physadv sticker \
    --out "$OUT/ddp_sticker" --steps 20 --eval-views 20 --no-scenes --device cuda
echo "log: $LOG"
