#!/usr/bin/env bash
# The GPU study on one lent GPU machine (no Ray, no network there): full Beauty, Table 3's variants
# (full, no_cl, no_cs, no_is, unlearnable) plus full with semantic.exclude_same_user=true, 5 seeds,
# CUDA graph + bf16, 4 trials at once on the GPU, inside one 10-minute device run.  The driver is
# benchmarks/reproduce_gpu.py (its docstring: what it does, the time budget, reruns).
#
# 1. Once, on a CPU machine (MiniLM there; ~10 min on 2 cores), the ~23 MB payload:
#      python benchmarks/reproduce_gpu.py --prepare-payload .gpu_payload
#    -> .gpu_payload/beauty/{Beauty.txt,items.tsv}, .gpu_payload/beauty_items_minilm.{npy,json}
#    (.gpu_payload/ is git-ignored; the device tool carries it when named in `carry`.)
# 2. On the GPU machine, with the device tool:
#      run(command="bash benchmarks/reproduce_gpu.sh", carry=[".gpu_payload"], timeout_s=600)
#    Extra arguments go to the driver, e.g. `bash benchmarks/reproduce_gpu.sh --seeds 4,5`;
#    the attribution study (experiments/attribution.yaml, 9 arms x 5 seeds: more than one device
#    window until fused trials land, so run it seed by seed):
#      bash benchmarks/reproduce_gpu.sh --grid experiments/attribution.yaml --experiment attribution --seeds 1
#    and its CPU check: python benchmarks/reproduce_gpu.py --smoke --grid experiments/attribution.yaml;
#    BUDGET_S (default 480) leaves room for start-up and packing inside the 10-minute limit.
# 3. Back here: $OUT holds reproduce_gpu-*.json (raw timings and metrics: copy it to
#    benchmarks/results/), reproduce_gpu.log and reproduce_gpu_store.tgz (results rows, ranks and
#    per-epoch histories; no weights).  Then:
#      mkdir -p runs/reproduce_gpu && tar xzf reproduce_gpu_store.tgz -C runs/reproduce_gpu
#      sracl-ray report runs/reproduce_gpu/ablation --out runs/reproduce_gpu/report
#    A later run (`--seeds 4,5`) after unpacking the earlier store into STORAGE skips finished trials.
set -uo pipefail
cd "$(dirname "$0")/.."
PAYLOAD=${PAYLOAD:-.gpu_payload}
STORAGE=${STORAGE:-/tmp/reproduce_gpu}
BUDGET_S=${BUDGET_S:-480}
RESULTS=${OUT:-benchmarks/results}
JSON=benchmarks/results/reproduce_gpu-$(date -u +%Y-%m-%dT%H%M%S).json
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$STORAGE" benchmarks/results "$RESULTS"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

python3 benchmarks/reproduce_gpu.py --data "$PAYLOAD/beauty" --item-vectors "$PAYLOAD/beauty_items_minilm.npy" \
    --storage "$STORAGE" --budget-s "$BUDGET_S" --out "$JSON" "$@" 2>&1 | tee "$RESULTS/reproduce_gpu.log"
status=${PIPESTATUS[0]}

if [ -n "${OUT:-}" ]; then  # on the device machine: what comes back (at most 8 files, 16 MiB each)
    cp "$JSON" "$OUT/" 2>/dev/null || true
    tar czf "$OUT/reproduce_gpu_store.tgz" -C "$STORAGE" --exclude='checkpoint*' --exclude='*.safetensors' \
        --exclude='.semantic' . && ls -l "$OUT"
fi
exit "$status"
