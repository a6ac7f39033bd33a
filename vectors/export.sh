#!/usr/bin/env bash
# Each published set at the peak layer its metadata records (chosen on dev by `emolab layers`:
# smollm2-135m-ekman 25, smollm2-135m-ekman-mean_diff_std 14, gemma3-270m-ekman 12,
# gemma3-270m-ekman-logistic 5), one file per emotion and format, under
# vectors/exports/<set>/. Run from the repository root: bash vectors/export.sh
set -euo pipefail
EMOLAB=${EMOLAB:-.venv/bin/emolab}
for set in smollm2-135m-ekman smollm2-135m-ekman-mean_diff_std gemma3-270m-ekman \
  gemma3-270m-ekman-logistic; do
  rm -rf "vectors/exports/$set"
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
