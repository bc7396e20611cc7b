#!/usr/bin/env bash
# The paper's comparison on this machine: from an IL checkpoint, DPO on (a) expert demonstrations
# standing in for the paper's 1,200 human trajectories and (b) 100 self-generated reward-1
# trajectories, and PPO; then `webshop-trl compare` of rule, IL and the three on the same test goals
# (greedy, paired, 95 % bootstrap intervals): the product split (SPLIT_MODE, the headline), the
# index split and the 13 human goals. Every stage is skipped when its output exists, so a rerun
# resumes. Budget on a 2-core CPU: about 2 hours at the default sizes; every stage's wall time goes
# to $OUT/times.tsv.
#   IL=outputs/il-seeds/seed0 bash recipes/minilm/results/run.sh        # OUT=outputs/results by default
#   EXPERT_GOALS=300 DPO_STEPS=200 PPO_UPDATES=3 ...                     # the main job's small sizes
#   EXPERT_NOISE=on bash recipes/minilm/results/run.sh   # (a) from the human-like noisy expert
# EXPERT_NOISE=on collapses DPO (a) here: the noisy expert's look at a sub-page followed by
# "< prev" makes click[buy now] the rejected action on many pages (1,606 pairs reject it, 1,080
# choose it), and the DPO policy stops buying (docs/REPRODUCTION.md). EVAL_GOALS limits the greedy
# evaluation to the first N test goals.
set -euo pipefail
OUT=${OUT:-outputs/results}
IL=${IL:-outputs/il/minilm}
IL_DEMOS=${IL_DEMOS:-outputs/il/demos/expert-train-product.jsonl}   # the IL data, for PPO's IL term
DPO_STEPS=${DPO_STEPS:-500}
PPO_UPDATES=${PPO_UPDATES:-10}
EXPERT_NOISE=${EXPERT_NOISE:-off}
EXPERT_GOALS=${EXPERT_GOALS:-1200}
SPLIT_MODE=${SPLIT_MODE:-product}
EVAL_GOALS=${EVAL_GOALS:-}   # empty: every test goal of each view
OTHER_MODE=$([[ $SPLIT_MODE == product ]] && echo index || echo product)
A=expert-$EXPERT_GOALS-noise-$EXPERT_NOISE
BIN=${BIN:-.venv/bin}
mkdir -p "$OUT"/{demos,preferences,eval,logs}
stage() {  # stage NAME DONE_FILE command...
  local name=$1 done=$2; shift 2
  if [[ -e $done ]]; then echo "[skip] $name ($done exists)"; return; fi
  echo "[run ] $name: $*"
  local t0=$SECONDS
  "$@" > "$OUT/logs/$name.log" 2>&1
  printf '%s\t%d\t%s\n' "$name" $((SECONDS - t0)) "$*" >> "$OUT/times.tsv"
  echo "[done] $name in $((SECONDS - t0)) s"
}
stage demos-$A "$OUT/demos/$A.jsonl" \
  $BIN/webshop-trl demos expert --split train --split-mode $SPLIT_MODE --num-goals $EXPERT_GOALS --noise $EXPERT_NOISE --seed 0 \
  --output "$OUT/demos/$A.jsonl" --quiet
stage demos-self "$OUT/demos/self-100.done" bash -c "$BIN/webshop-trl demos self --checkpoint $IL --temperature 1.0 \
  --num-keep 100 --split train --split-mode $SPLIT_MODE --seed 0 --output $OUT/demos/self-100.jsonl --summary-json $OUT/demos/self-100.summary.json --quiet && touch $OUT/demos/self-100.done"
stage prefs-$A "$OUT/preferences/$A" \
  $BIN/webshop-trl build-preferences "$OUT/demos/$A.jsonl" --reference-model "$IL" --bf16 \
  --output "$OUT/preferences/$A"
stage prefs-self "$OUT/preferences/self-100" \
  $BIN/webshop-trl build-preferences "$OUT/demos/self-100.jsonl" --reference-model "$IL" --bf16 \
  --output "$OUT/preferences/self-100"
for d in $A self-100; do
  stage dpo-$d "$OUT/dpo-$d/model.safetensors" \
    $BIN/python -m webshop_trl.scripts.dpo --config recipes/minilm/dpo/config_full.yaml \
    --model_name_or_path "$IL" --dataset_name "$OUT/preferences/$d" --output_dir "$OUT/dpo-$d" \
    --max_steps $DPO_STEPS --max_train_samples $((DPO_STEPS * 4)) --eval_steps $DPO_STEPS --save_steps $DPO_STEPS
done
stage ppo "$OUT/ppo/model.safetensors" \
  $BIN/python -m webshop_trl.scripts.ppo --config recipes/minilm/ppo/config_full.yaml \
  --model_name_or_path "$IL" --output_dir "$OUT/ppo" --num_updates $PPO_UPDATES --save_steps 5 --goal_split_mode $SPLIT_MODE \
  --il_dataset_paths "$IL_DEMOS"
$BIN/webshop-trl compare --agent rule --agent "il=policy:$IL" --agent "dpo-expert=policy:$OUT/dpo-$A" \
  --agent "dpo-self=policy:$OUT/dpo-self-100" --agent "ppo=policy:$OUT/ppo" --split test --split-mode $SPLIT_MODE \
  --split-mode $OTHER_MODE --human ${EVAL_GOALS:+--max-goals $EVAL_GOALS} --no-progress --output "$OUT/compare"
echo "all stages done; times in $OUT/times.tsv"
