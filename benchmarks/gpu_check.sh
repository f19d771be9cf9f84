#!/usr/bin/env bash
# The GPU check in one go (BENCHMARKS.md): on a machine with PyTorch and a CUDA GPU, no
# network needed, from this working tree.
#
#   benchmarks/gpu_check.sh OUT_DIR              # at most 7 min 50 s: every step has its own limit
#   benchmarks/gpu_check.sh OUT_DIR --cpu-only   # the plumbing at tiny sizes on the CPU, CUDA tests skipped
#
# Steps, each with its own time limit, output in OUT_DIR/<step>.log:
#   deps       imports the project's dependencies; installs missing ones from the wheels in
#              wheels/ at the project root (pip --no-index; fill it beforehand, BENCHMARKS.md)
#   cuda_tests pytest -m cuda: the test cases parametrised over the CUDA device
#   benchmark  benchmarks/run.py at full size (eval, rank, train) -> OUT_DIR/benchmark.json
#   bf16       benchmarks/bf16_accuracy.py, bf16 against fp32, 3 seeds -> OUT_DIR/bf16/bf16_accuracy.json
# The summary comes last (also in OUT_DIR/summary.txt); the exit status is 1 when a step failed.
# PYTHON chooses the interpreter (default python3).
set -uo pipefail

usage() { echo "usage: $0 OUT_DIR [--cpu-only]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
OUT=$1
CPU_ONLY=0
if [ $# -eq 2 ]; then
    [ "$2" = "--cpu-only" ] || usage
    CPU_ONLY=1
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
WHEELS=$ROOT/wheels
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
export PYTHONWARNINGS=ignore
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)
cd "$ROOT" || exit 2

SUMMARY=()
FAILED=0

# step NAME LIMIT_SECONDS COMMAND...: runs COMMAND with its output in OUT/NAME.log
step() {
    local name=$1 limit=$2 start rc status
    shift 2
    echo "== $name (limit ${limit} s): $*"
    start=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
    rc=$?
    case $rc in
        0) status=ok ;;
        124|137) status="TIMED OUT"; FAILED=1 ;;
        *) status="FAILED (exit $rc)"; FAILED=1 ;;
    esac
    SUMMARY+=("$(printf '%-11s %-16s %4d s  %s' "$name" "$status" $(( $(date +%s) - start )) "$OUT/$name.log")")
    tail -n 3 "$OUT/$name.log"
}

install_missing() {
    local missing
    missing=$("$PY" - <<'EOF'
import importlib
# module -> the pip package that provides it
needed = {'numpy': 'numpy', 'PIL': 'pillow', 'yaml': 'pyyaml', 'easydict': 'easydict', 'tqdm': 'tqdm',
          'cv2': 'opencv-python-headless', 'tensorboard': 'tensorboard', 'pytest': 'pytest'}
missing = []
for module, package in needed.items():
    try:
        importlib.import_module(module)
    except ImportError:
        missing.append(package)
print(' '.join(missing))
EOF
    ) || return 1
    "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" || return 1
    if [ -z "$missing" ]; then
        echo "every dependency is installed"
        return 0
    fi
    echo "missing: $missing; installing from $WHEELS"
    if [ ! -d "$WHEELS" ]; then
        echo "error: $WHEELS does not exist: fill it beforehand with pip download (BENCHMARKS.md)"
        return 1
    fi
    # shellcheck disable=SC2086  # one word per package
    "$PY" -m pip install --no-index --find-links "$WHEELS" $missing
}

export -f install_missing
export PY WHEELS
step deps 30 bash -c install_missing
if [ $CPU_ONLY = 1 ]; then
    SUMMARY+=("$(printf '%-11s %-16s' cuda_tests 'skipped (--cpu-only)')")
    step benchmark 120 "$PY" benchmarks/run.py --device cpu --model DeepLabv2-tiny --scale 0.0625 \
        --eval-images 1 --rank-images 1 --train-iters 1 --warmup 1 --rounds 1 --json "$OUT/benchmark.json"
    step bf16 120 "$PY" benchmarks/bf16_accuracy.py "$OUT/bf16" --tiny --seeds 1 --device cpu
else
    step cuda_tests 120 "$PY" -m pytest -q -m cuda -p no:cacheprovider --continue-on-collection-errors
    step benchmark 170 "$PY" benchmarks/run.py --device cuda --eval-images 10 --rank-images 10 \
        --train-iters 6 --warmup 2 --json "$OUT/benchmark.json"
    step bf16 150 "$PY" benchmarks/bf16_accuracy.py "$OUT/bf16" --seeds 3 --device cuda
fi

{
    echo
    echo "GPU check summary ($(date -u +%Y-%m-%dT%H:%M:%SZ), $OUT)"
    printf '  %s\n' "${SUMMARY[@]}"
    echo "cuda tests:"
    if [ $CPU_ONLY = 1 ]; then
        echo "  skipped (--cpu-only)"
    else
        grep -E '(passed|failed|error)' "$OUT/cuda_tests.log" | tail -n 1 | sed 's/^/  /'
    fi
    echo "benchmark (ours / baseline):"
    "$PY" - "$OUT/benchmark.json" <<'EOF' || echo "  no benchmark.json"
import json, sys
report = json.load(open(sys.argv[1]))
print(f"  {report['versions'].get('gpu', report['versions']['cpu'])}, torch {report['versions']['torch']}")
for key in ('eval', 'eval_postprocess', 'rank', 'rank_postprocess', 'rank_overview', 'train', 'eval_memory', 'rank_memory',
            'train_memory'):
    if key in report:
        m = report[key]
        print(f"  {key:17s} ours {m['ours']:.4g}, baseline {m['baseline']:.4g} -> x{m['ratio']}  ({m['unit']})")
print(f"  fp32 arithmetic of each side: {report['precision']}")
print(f"  training, ours: {report['settings'].get('train_ours')}")
print(f"  checks: {report['checks']}")
EOF
    echo "bf16 against fp32:"
    sed -n '/^bf16 against fp32/,$p' "$OUT/bf16.log" | sed 's/^/  /'
} | tee "$OUT/summary.txt"
exit $FAILED
