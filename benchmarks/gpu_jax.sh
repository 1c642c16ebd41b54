#!/usr/bin/env bash
# The GPU figures on a machine with JAX (CUDA) and no TensorFlow or Keras: installs Keras from the wheel folder
# carried with the checkout, then prints benchmarks/train_throughput.py's JSON lines for dcgan64 and imagenet128 at
# batch 256 in mixed_bfloat16 on Keras's JAX backend. Run from the repository root; well inside 10 minutes on an
# H100 (each preset has its own time limit). BUILD.md ("GPU figures on JAX") says how the wheel folder is made.
#
#   bash benchmarks/gpu_jax.sh
#   WHEELS=.gpu_wheels PRESETS="dcgan64 imagenet128" BATCH=256 PRECISION=mixed_bfloat16 STEPS=20 WARMUP=3 \
#       RUN_TIMEOUT=270 PYTHON=python3 bash benchmarks/gpu_jax.sh      # the defaults, spelled out
set -euo pipefail

PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS:-.gpu_wheels}
SITE=${SITE:-$(mktemp -d)/site}
PRESETS=${PRESETS:-dcgan64 imagenet128}
BATCH=${BATCH:-256}
PRECISION=${PRECISION:-mixed_bfloat16}
STEPS=${STEPS:-20}
WARMUP=${WARMUP:-3}
RUN_TIMEOUT=${RUN_TIMEOUT:-270}

if ! ls "$WHEELS"/keras-*.whl >/dev/null 2>&1; then
  echo "No Keras wheel in $WHEELS: make the folder on a machine with the package index (BUILD.md, GPU figures on" \
       "JAX) and carry it here." >&2
  exit 2
fi

# Keras and those of its dependencies the machine lacks (JAX brings numpy and ml_dtypes: theirs are kept), into a
# folder of their own that goes first on PYTHONPATH. pip when the machine has it, else the wheels unpacked (a wheel
# is a zip of its site-packages files).
packages="keras absl-py namex rich markdown-it-py mdurl pygments h5py optree typing-extensions packaging"
for module in numpy ml_dtypes; do
  "$PYTHON" -c "import $module" 2>/dev/null || packages="$packages ${module/_/-}"
done
mkdir -p "$SITE"
if "$PYTHON" -m pip --version >/dev/null 2>&1; then
  # shellcheck disable=SC2086  # one word per package
  "$PYTHON" -m pip install --quiet --no-index --find-links "$WHEELS" --no-deps --target "$SITE" $packages
else
  for package in $packages; do
    wheel=$(ls "$WHEELS"/"${package//-/_}"-*.whl | head -1)
    "$PYTHON" -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" "$wheel" "$SITE"
  done
fi

export KERAS_BACKEND=jax
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PYTHON" - <<'EOF'
import json, sys
import jax, keras
try:
    import tensorflow  # noqa: F401
    tensorflow_importable = True
except ImportError:
    tensorflow_importable = False
print(json.dumps({"python": sys.version.split()[0], "jax": jax.__version__, "keras": keras.__version__,
                  "keras_from": keras.__file__, "backend": keras.backend.backend(),
                  "devices": [str(d) for d in jax.devices()], "tensorflow_importable": tensorflow_importable}))
EOF
status=0
for preset in $PRESETS; do
  timeout "$RUN_TIMEOUT" "$PYTHON" benchmarks/train_throughput.py --backend=jax --preset="$preset" \
    --batch_size="$BATCH" --precision="$PRECISION" --steps="$STEPS" --warmup="$WARMUP" || status=$?
done
exit $status
