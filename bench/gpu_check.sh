#!/usr/bin/env bash
# One prepared GPU check (issue 15), ≤ 8 minutes on one H100/H200: the CUDA-only tests, the training-step,
# restoration and degradation benchmarks on the GPU, and a short `make photos`-style run at 128² under bf16.
# Every figure is printed with the device name; the whole log goes to build/gpu_check/gpu_check.log.
#
#     bash bench/gpu_check.sh            # or: make gpu-check
#
# Without CUDA it stops at once with exit 3 and says so (the suite and CI never need a GPU).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${GPU_CHECK_OUT:-build/gpu_check}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: no CUDA device visible to torch here ($("$PY" -c 'import torch; print(torch.__version__)')); nothing was run" >&2
    exit 3
fi
DEVICE=$("$PY" -c "import torch; p = torch.cuda.get_device_properties(0); \
print(f'{p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}')")
failed=()
step() {  # step NAME TIMEOUT_S COMMAND...: run one part, log it, go on when it fails
    local name=$1 limit=$2; shift 2
    echo "=== [$DEVICE] $name: $*" | tee -a "$LOG"
    local start=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee -a "$LOG"
    local rc=${PIPESTATUS[0]}
    echo "=== [$DEVICE] $name: exit $rc after $((SECONDS - start)) s" | tee -a "$LOG"
    [ "$rc" = 0 ] || failed+=("$name (exit $rc)")
}
echo "gpu_check on $DEVICE, $(date -u +%FT%TZ)" | tee "$LOG"
nvidia-smi --query-gpu=name,memory.used,memory.total,utilization.gpu --format=csv 2>&1 | tee -a "$LOG"
CUDA_TESTS=$(grep -l "torch.cuda.is_available()" tests/test_*.py)  # the files with tests skipped without CUDA
step "CUDA-only tests" 90 "$PY" -m pytest -q -p no:cacheprovider $CUDA_TESTS -k "cuda or gpu"
step "train_step adm512 512² bf16" 90 "$PY" bench/train_step.py --batch-size 8 --steps 5 --device cuda
step "restore adm512 512² NFE 1/10/100 bf16" 120 "$PY" bench/restore.py --nfe 1 10 100 --batch-size 4 --device cuda --bf16
step "degrade ffhq512 batched on the GPU" 60 "$PY" bench/degrade.py --images 64 --repeats 1 --gpu-images 512
step "photos at 128² bf16 (300 steps, NFE 10)" 150 "$PY" full/real_photos.py --out "$OUT/photos128" --tile 128 --preset photo64 \
    --crops 2000 --steps 300 --batch-size 32 --nproc 1
[ -f "$OUT/photos128/photos.md" ] && { echo "=== [$DEVICE] photos at 128²:"; cat "$OUT/photos128/photos.md"; } | tee -a "$LOG"
if [ ${#failed[@]} -gt 0 ]; then
    echo "gpu_check on $DEVICE: FAILED: ${failed[*]}" | tee -a "$LOG"
    exit 1
fi
echo "gpu_check on $DEVICE: all parts passed; log in $LOG" | tee -a "$LOG"
