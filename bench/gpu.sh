#!/usr/bin/env bash
# aiayn GPU check, one self-contained run of at most 8 minutes (bench/gpu.py says what it
# measures): Transformer base and big training tokens/s, MFU and peak memory against the
# estimate in the precision train.precision auto picks, at the presets' max_tokens; beam-4
# decoding against transformers' Marian generate(); and the real pipeline on the demo corpus
# at base dimensions (3 minutes of training) ending with a BLEU score.
#
#   bash bench/gpu.sh                 # writes $OUT/bench_gpu.{json,md}, else reports/
#   PYTHON=/opt/py/bin/python bash bench/gpu.sh --presets base --precisions bf16 fp16
#   bash bench/gpu.sh --tiny          # the same code on the CPU at tiny sizes (a self-test)
#
# Needs a python with torch (2.4+) and numpy; transformers for the decoding peer (without it
# aiayn decodes alone); aiayn's runtime dependencies for the pipeline run (tokenizers,
# sacrebleu, sacremoses, typer, pyyaml, tqdm; without them it is skipped). No installation,
# no network: the repository goes on PYTHONPATH and Hugging Face libraries run offline. Not
# needed: dvc, dvclive, datasets.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
BUDGET="${BENCH_GPU_BUDGET:-420}"   # seconds of measurements; the hard limit below is 480
OUT_DIR="${OUT:-$ROOT/reports}"

cd "$ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false TRANSFORMERS_VERBOSITY=error
# Fewer fragmentation OOMs while the search tries descending batch sizes.
export PYTORCH_CUDA_ALLOC_CONF="${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}"
mkdir -p "$OUT_DIR"

"$PYTHON" - "$@" <<'EOF'
import sys

try:
    import torch
except ImportError:
    sys.exit("bench/gpu.sh: this python has no torch (set PYTHON=/path/to/python)")
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, "
      f"CUDA {torch.version.cuda}, GPU: "
      f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}",
      file=sys.stderr)
args = sys.argv[1:]
on_cpu = "--tiny" in args or "--device=cpu" in args or ["--device", "cpu"] in [
    args[i : i + 2] for i in range(len(args))
]
if not torch.cuda.is_available() and not on_cpu:
    sys.exit("bench/gpu.sh: no CUDA GPU visible (run python -m bench for the CPU benchmarks)")
EOF

# SIGINT at 480 s (the report written after each measurement stays), SIGKILL 20 s later.
exec timeout --signal=INT --kill-after=20 480 \
  "$PYTHON" -m bench.gpu --out "$OUT_DIR/bench_gpu.json" --budget "$BUDGET" "$@"
