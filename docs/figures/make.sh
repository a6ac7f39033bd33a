#!/usr/bin/env bash
# docs/figures/: every figure kind of `emolab plot`, drawn from real-model sessions.
# layers, cosines, sweep and the heads map come from README's issue-14 session
# (sessions/s14-smollm2-135m, made by README's extract + sweep commands); the alignment from
# that session beside sessions/s14-gemma3-270m. Cross-lingual and checkpoints are small
# real runs made here (4 prompts, 2 random draws; a 40-step fine-tune with 2 checkpoints and
# 20 texts per label), sized for a shared 2-core machine: README's tables hold the full-size
# numbers. Figures are drawn after each step, so a cut-off run keeps what it made.
# Run from the repository root:  flock /tmp/emolab-heavy.lock bash docs/figures/make.sh
set -euo pipefail
EMOLAB=${EMOLAB:-.venv/bin/emolab}
S=${SESSIONS:-sessions}
F=docs/figures
export EMOLAB_THREADS=${EMOLAB_THREADS:-2}
SMOL=$S/s14-smollm2-135m
GEMMA=$S/s14-gemma3-270m
for kind in layers cosines sweep; do $EMOLAB plot "$SMOL" $kind --out $F; done
$EMOLAB heads "$SMOL" --emotion joy
$EMOLAB plot "$SMOL" heads --out $F
if [ -d "$GEMMA" ]; then
  $EMOLAB align "$SMOL" "$GEMMA" --draws 100
  $EMOLAB plot "$SMOL" align --out $F
fi
$EMOLAB report "$SMOL" --out $F/s14-smol-report.html
rm -rf "$S/fig-xl" "$S/fig-ft" "$S"/fig-ck*
$EMOLAB crosslingual --model gemma3-270m --prompts 4 --random-draws 2 --session "$S/fig-xl"
$EMOLAB plot "$S/fig-xl" crosslingual --out $F
$EMOLAB finetune --model smollm2-135m --steps 40 --save-every 20 --limit 20 --test-limit 10 \
  --out "$S/fig-ft"
ARGS=(--method mean_diff --position mean --layers 10 --limit 20 --dev-limit 10 --test-limit 10)
$EMOLAB extract --model smollm2-135m "${ARGS[@]}" --session "$S/fig-ck0"
for step in 000020 000040; do
  $EMOLAB extract --model "hf:$S/fig-ft/checkpoints/step-$step" "${ARGS[@]}" \
    --session "$S/fig-ck$step"
done
$EMOLAB compare "$S/fig-ck0" "$S/fig-ck000020" "$S/fig-ck000040" --layer 10 --texts 4
$EMOLAB plot "$S/fig-ck0" checkpoints --out $F
