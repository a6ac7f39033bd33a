#!/usr/bin/env bash
# Each published set at its recorded peak layer, one file per emotion and format, under
# vectors/exports/<set>/. Run from the repository root: bash vectors/export.sh
set -euo pipefail
EMOLAB=${EMOLAB:-.venv/bin/emolab}
for set in smollm2-135m-ekman smollm2-135m-ekman-logistic gemma3-270m-ekman \
  gemma3-270m-ekman-logistic; do
  mkdir -p "vectors/exports/$set"
  $EMOLAB vectors export "vectors/$set.safetensors" --format safetensors \
    --out "vectors/exports/$set/all-emotions.safetensors"
  for e in anger disgust fear joy sadness surprise; do
    for fmt in gguf pt; do
      $EMOLAB vectors export "vectors/$set.safetensors" --format $fmt --emotion $e \
        --out "vectors/exports/$set/$e.$fmt"
    done
  done
done
