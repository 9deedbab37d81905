#!/usr/bin/env bash
# The long run behind genesis-rna-small v2 (issue 22). Re-run the same script after an interruption, on this
# machine or a fresh one: the store is rebuilt only when missing (about 40 min on 2 cores), the code is checked
# out at the pinned commit into the run folder (so later changes to the repository cannot change a run in
# flight), and training resumes from the latest checkpoint in RUN_DIR (checkpoints every 100 steps).
#
#   bash experiments/pretrain_v2.sh                 # start or resume
#   RUN_DIR=/work/runs/v2/run bash experiments/pretrain_v2.sh --max_steps 8000     # same run, other flags
#
# Deciding whether to resume or restart on a fresh machine: if RUN_DIR/checkpoints has a step-* folder, resume
# (cheap); otherwise the run starts over from step 0 with the same config (the store is deterministic: same
# inputs, same seed, same split and soft-pair subset).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-$(pwd)/../shared/data/pretrain}
STORE_DIR=${STORE_DIR:-/work/stores/v2}
RUN_DIR=${RUN_DIR:-/work/runs/v2/run}
CODE_COMMIT=${CODE_COMMIT:-c427777}            # the v2 model/data code the run was started with
CODE_DIR=${CODE_DIR:-$(dirname "$RUN_DIR")/code}
THREADS=${THREADS:-2}

if [ ! -d "$CODE_DIR/genesis_rna" ]; then
  git worktree add --detach -f "$CODE_DIR" "$CODE_COMMIT"
fi
export PYTHONPATH="$CODE_DIR"                  # the pinned code, not the editable install of this checkout

if [ ! -f "$STORE_DIR/manifest.json" ]; then
  # Rfam 14.2 seeds (structures from SS_cons, projected per sequence) + GtRNAdb tRNAs (in Rfam's tRNA family, so
  # the family-disjoint split keeps them together) + 607,246 human transcript windows. Records without a given
  # structure: ViennaRNA base-pair probabilities for a fixed 30 % (chosen by sequence hash) as soft pair targets,
  # unknown structure for the rest.
  python -m genesis_rna.preprocess "$DATA/rfam14.2_seed/Rfam.seed.gz" "$DATA/trna_gtrnadb" \
    "$DATA/rbp31_transcripts/rbp31_windows.fa.gz" -o "$STORE_DIR" --input-family "RF00005=$DATA/trna_gtrnadb" \
    --fold-method bpp --fold-fraction 0.3 --workers 2 --quiet
fi

export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
exec python -m genesis_rna.train_pretrain --data_path "$STORE_DIR" --output_dir "$RUN_DIR" \
  --model_size small --model_overrides "${MODEL_OVERRIDES:-pair_bias=true}" \
  --tokens_per_batch 16384 --max_seq_len 512 --max_steps 6000 --learning_rate 1e-3 --warmup_steps 500 \
  --min_lr_ratio 0.1 --eval_every 1000 --save_every 100 --log_every 25 --flops_every 500 \
  --max_records_per_family 1000 --structure_exclude_families archiveii --seed 0 --quiet "$@"
