# Shell functions shared by paper_experiment.sh and paper_table3.sh; sourced by them, not run.
#
# Each step is resumable: a training continues from its last.ckpt and is skipped once it reached its epoch
# count, an svc-eval report is skipped when its JSON exists. The sourcing script sets, before calling them:
#   out          its output folder (runs/ and eval/ inside)
#   width, batch the network width and the batch of every training
#   parallel     trainings side by side (one torch thread each); 1 trains one at a time
#   max_steps    array: empty, or (--max-steps N) for a smoke run
#   val_images   array: empty, or (--val-max-images N) for a smoke run
# Every training runs without photometric augmentation (--photometric 0; new svc-train runs have it on by
# default), so the runs of docs/experiments.md stay reproducible.

exec 3>&1  # the console: log lines reach it also from trainings whose output goes to their log file
log() { echo "[$(date +%H:%M:%S)] $*" >&3; }

train() {  # train RUN EPOCHS [svc-train options...]: train (or continue) one run unless it reached EPOCHS
  local run="$out/runs/$1" n=$2
  shift 2
  if [ "$(cat "$run/finished" 2>/dev/null)" = "$n" ]; then log "$(basename "$run"): done ($n epochs)"; return; fi
  local resume=()
  [ -f "$run/checkpoints/last.ckpt" ] && resume=(--resume "$run")
  log "$(basename "$run"): training to $n epochs"
  local start=$SECONDS status=0
  svc-train --width "$width" --batch-size "$batch" --epochs "$n" --num-workers 1 --amp --no-progress --photometric 0 \
    --out "$run" "${resume[@]}" "${max_steps[@]}" "${val_images[@]}" "$@" || status=$?
  echo $(( SECONDS - start )) >> "$run/seconds"  # one line per invocation, stopped or not: the wall time of each piece
  [ "$status" -eq 0 ] || return "$status"
  echo "$n" > "$run/finished"
}

result() {  # result RUN: the checkpoint that is the run's result: best.ckpt (the best validation epoch, or with
  # svc-train --select last the last whole epoch); last.ckpt for a MAX_STEPS smoke run cut before its first whole
  # epoch, which has none
  local checkpoints="$out/runs/$1/checkpoints"
  if [ -n "${MAX_STEPS:-}" ] && [ ! -f "$checkpoints/best.ckpt" ]; then echo "$checkpoints/last.ckpt"
  else echo "$checkpoints/best.ckpt"; fi
}

pids=()
in_parallel() {  # in_parallel train RUN ...: train in the background (log: runs/RUN.log), $parallel at a time
  if [ "$parallel" -le 1 ]; then "$@"; return; fi
  while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do sleep 1; done
  log "$2: started in the background, log $out/runs/$2.log"
  OMP_NUM_THREADS=1 "$@" >> "$out/runs/$2.log" 2>&1 &
  pids+=($!)
}

finish_parallel() {  # wait for the background trainings; if one failed, stop the others and the script
  local pid
  for pid in "${pids[@]}"; do
    if ! wait "$pid"; then
      log "a training failed: see the logs in $out/runs/"
      kill "${pids[@]}" 2>/dev/null || true
      exit 1
    fi
  done
  pids=()
}

evaluate() {  # evaluate JSON MODEL [svc-eval options...]: score once, unless JSON exists
  local json=$1 model=$2
  shift 2
  [ -f "$json" ] || svc-eval "$model" --json "$json" "$@"
}
