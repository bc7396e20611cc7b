#!/usr/bin/env bash
# Does the IL recipe train reliably? config_full.yaml with several seeds on the product split's
# expert demos, then IL (seeds pooled into one row) and the rule agent compared greedily on the
# same test goals: the product split (headline), the index split and the 13 human-written goals.
# Each run writes training_curves.png beside its checkpoint; held-out choice accuracy is in its
# eval_results.json. Runs are skipped when their checkpoint exists, so a rerun resumes.
#   bash recipes/minilm/il/seeds.sh                  # OUT=outputs/il-seeds, SEEDS="0 1 2"
#   PARALLEL=1 bash recipes/minilm/il/seeds.sh       # the seeds at once, one thread each (2-core CPU)
# About 15 min per seed on 2 idle cores, ~35-45 min for three in parallel, plus the comparison.
set -euo pipefail
OUT=${OUT:-outputs/il-seeds}
SEEDS=${SEEDS:-"0 1 2"}
PARALLEL=${PARALLEL:-0}
BIN=${BIN:-.venv/bin}
DEMOS=$OUT/demos/expert-train-product.jsonl
mkdir -p "$OUT/logs"
if [[ ! -e $DEMOS ]]; then
  $BIN/webshop-trl demos expert --split train --split-mode product --output "$DEMOS" --quiet
fi
train() {  # train SEED
  local seed=$1
  if [[ -e $OUT/seed$seed/model.safetensors ]]; then echo "[skip] seed $seed"; return; fi
  local t0=$SECONDS
  $BIN/python -m webshop_trl.scripts.il --config recipes/minilm/il/config_full.yaml --dataset_paths "$DEMOS" \
    --output_dir "$OUT/seed$seed" --seed "$seed" --eval_steps 100 --disable_tqdm true > "$OUT/logs/il-seed$seed.log" 2>&1
  printf 'il-seed%s\t%d\n' "$seed" $((SECONDS - t0)) >> "$OUT/times.tsv"
}
for seed in $SEEDS; do
  if [[ $PARALLEL == 1 ]]; then OMP_NUM_THREADS=1 train "$seed" & else train "$seed"; fi
done
wait
checkpoints=$(for seed in $SEEDS; do printf '%s,' "$OUT/seed$seed"; done)
$BIN/webshop-trl compare --agent rule --agent "il=policy:${checkpoints%,}" \
  --split test --split-mode product --split-mode index --human --no-progress --output "$OUT/compare"
for seed in $SEEDS; do
  printf 'seed %s: ' "$seed"
  $BIN/python -c "import json,sys; m=json.load(open(sys.argv[1])); print(f\"held-out choice accuracy {m['eval_choice_accuracy']:.3f}, eval loss {m['eval_loss']:.3f}\")" \
    "$OUT/seed$seed/eval_results.json"
done
