#!/usr/bin/env bash
# Rebuilds the shipped models (models/pretrained/) from a Common Voice folder in the
# `manifest` layout with a split column, e.g. ../shared/cv-sample (only read):
#
#   bash scripts/build_pretrained.sh ../shared/cv-sample [WORK_DIR] [TASKS]
#
# WORK_DIR (default ~/.cache/agegender/pretrained) gets the features, the training runs and
# the test reports; TASKS (default "gender") are the tasks to ship. The recipe is the one
# models/pretrained/README.md reports: voice preset at 16 kHz with the voice statistics and
# the voice encoder's embedding (--inputs=pitch,embedding, no image), --architecture=embedding
# --pitch_input (a logistic regression on both), --l2=0.01, learning rate 1e-3, batch 128,
# 30 epochs, the best epoch by dev UAR. Each model is stored as trained (within 40 MB for
# all), and reference.json records its probabilities on the clips in models/pretrained/clips/.
# About 7 minutes on 2 idle cores (preprocessing; training takes about a minute). SEED
# (default 0, the shipped gender model's) seeds the training.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SOURCE=${1:?usage: scripts/build_pretrained.sh MANIFEST_DIR [WORK_DIR] [TASKS]}
WORK=${2:-$HOME/.cache/agegender/pretrained}
TASKS=${3:-gender}
SEED=${SEED:-0}
export MPLBACKEND=${MPLBACKEND:-Agg} TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}

python src/preprocess_dataset.py --dataset_dir="$SOURCE" --dataset_type=manifest \
    --feature_preset=voice --sample_rate=16000 --inputs=pitch,embedding \
    --output_dir="$WORK/data" --results_dir="$WORK/results"
for task in $TASKS; do
    python src/train.py --dataset_dir="$WORK/data" --cls_task="$task" --num_epochs=30 \
        --batch_size=128 --architecture=embedding --pitch_input --l2=0.01 \
        --learning_rate=0.001 --seed="$SEED" \
        --models_dir="$WORK/models" --results_dir="$WORK/results"
    python src/test.py --dataset_dir="$WORK/data" --cls_task="$task" \
        --model_path="$WORK/models/$task/best_model_$task.keras" --results_dir="$WORK/results"
done
python - "$SOURCE" "$WORK" $TASKS <<'EOF'
import sys

from agegender import pretrained, shipped

work, tasks = sys.argv[2], sys.argv[3:]
for task in tasks:
    report = pretrained.ship(f"{work}/models/{task}/best_model_{task}.keras", task)
    print(f"{task}: {report['bytes'] / 1e3:.1f} kB")
print("reference:", pretrained.write_reference(shipped.pretrained_dir(), tasks))
EOF
