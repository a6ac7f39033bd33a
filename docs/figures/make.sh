#!/usr/bin/env bash
# The small real-model sessions behind docs/figures/ (README links them) and their figures.
# Deliberately far smaller than README's result runs (16 train / 16 dev / 16 test texts per
# label instead of 150, a 2 x 2 sweep on 4 prompts), so it fits a shared 2-core machine: the
# figures show each plot on real SmolLM2 / Gemma-3 data; README's tables hold the full-size
# numbers. Figures are drawn after each step, so a cut-off run keeps what it made.
# Run from the repository root:  flock /tmp/emolab-heavy.lock bash docs/figures/make.sh
set -euo pipefail
EMOLAB=${EMOLAB:-.venv/bin/emolab}
S=${SESSIONS:-sessions}
N=${N:-16}
export EMOLAB_THREADS=${EMOLAB_THREADS:-2}
rm -rf "$S/fig-smol" "$S/fig-gemma" "$S/fig-xl"
$EMOLAB extract --model smollm2-135m --method mean_diff,logistic --position mean \
  --limit "$N" --dev-limit "$N" --test-limit "$N" --session "$S/fig-smol"
$EMOLAB layers "$S/fig-smol"
$EMOLAB plot "$S/fig-smol" layers --out docs/figures
$EMOLAB plot "$S/fig-smol" cosines --out docs/figures
$EMOLAB heads "$S/fig-smol" --emotion joy
$EMOLAB plot "$S/fig-smol" heads --out docs/figures
$EMOLAB sweep "$S/fig-smol" --emotions joy,anger --layers 10,15 --alphas 0.3,0.8 \
  --prompts docs/figures/prompts.txt --max-new-tokens 16
$EMOLAB plot "$S/fig-smol" sweep --out docs/figures
$EMOLAB report "$S/fig-smol" --out docs/figures/fig-smol-report.html
$EMOLAB crosslingual --model gemma3-270m --layers 12 --prompts 4 --random-draws 2 \
  --session "$S/fig-xl"
$EMOLAB plot "$S/fig-xl" crosslingual --out docs/figures
$EMOLAB extract --model gemma3-270m --method mean_diff --position mean \
  --limit "$N" --dev-limit "$N" --test-limit "$N" --session "$S/fig-gemma"
$EMOLAB align "$S/fig-smol" "$S/fig-gemma" --draws 100
$EMOLAB plot "$S/fig-smol" align --out docs/figures
$EMOLAB report "$S/fig-smol" --out docs/figures/fig-smol-report.html
