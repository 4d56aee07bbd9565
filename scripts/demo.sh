#!/usr/bin/env bash
# Installs everything, then runs the whole pipeline on the synthetic demo corpus:
# make corpus → preprocess (raw layout) → train gender and age → test → infer.
# About 400 CPU-seconds: 5.5-12 minutes on 2 cores, by load. Re-running reuses the corpus, PNGs and shards.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/install.sh
export MPLBACKEND="${MPLBACKEND:-Agg}" TF_CPP_MIN_LOG_LEVEL=2
DEMO=data/DemoVoice
GENDER_EPOCHS="${GENDER_EPOCHS:-10}"
AGE_EPOCHS="${AGE_EPOCHS:-15}"
step() { printf '\n=== %s\n' "$*"; }
# bash's `time` after each step: wall time, and CPU time (user + sys, all processes of the step).
TIMEFORMAT='    (step took %1R s wall, %1U s user + %1S s sys CPU)'

step "1/5 demo corpus → $DEMO (synthetic espeak-ng voices, Kaggle Common Voice v1 layout)"
time "$PY" src/make_demo_dataset.py --out "$DEMO"
step "2/5 preprocess: clean → spectrogram PNGs → TFRecord shards"
time "$PY" src/preprocess_dataset.py --dataset_dir="$DEMO" --dataset_type=raw
for task in gender age; do
  epochs=$GENDER_EPOCHS; [ "$task" = age ] && epochs=$AGE_EPOCHS
  step "3/5 train $task ($epochs epochs, batch 32)"
  time "$PY" src/train.py --dataset_dir="$DEMO" --cls_task="$task" --num_epochs="$epochs" \
    --batch_size=32 --show_live_plot=True
  step "4/5 test $task on the held-out demo speakers"
  time "$PY" src/test.py --dataset_dir="$DEMO" --model_path="models/$task/best_model_$task.keras" \
    --cls_task="$task"
done
step "5/5 inference on four held-out clips"
clips=("$DEMO"/cv-valid-test/cv-valid-test/sample-00000{0..3}.mp3)
for task in gender age; do
  time "$PY" src/inference.py --model_path="models/$task/best_model_$task.keras" \
    --audio_file "${clips[@]}" --top_k=2 \
    --output="results/$task/best_model_$task/demo_inference_$task.csv"
  # each prediction beside its clip's true label (from the corpus CSVs): right or wrong
  "$PY" -m agegender.demo.truth --dataset_dir="$DEMO" --cls_task="$task" \
    --predictions="results/$task/best_model_$task/demo_inference_$task.csv"
done

cat <<TXT

=== done. Where things went:
  corpus (synthetic, raw layout):  $DEMO/  (speakers.csv lists each voice)
  spectrograms / shards:           $DEMO/Spectrograms/  $DEMO/TFRecord/
  dataset summary + bad clips:     results/$(basename "$DEMO")/dataset_summary.csv .png  preprocess_report.csv
  checkpoints:                     models/{gender,age}/best_model_*.keras and .h5
  reports, one folder per model:   results/{gender,age}/best_model_{gender,age}/
    training logs and curves:        train_logs_*.csv  training_metrics_*.png
    test reports:                    test_log_*.txt  confusion_matrix_*.png  predictions_*.csv
    inference probabilities:         demo_inference_*.csv
TXT
