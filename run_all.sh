#!/usr/bin/env bash
# run_all.sh: reproduce the report's runs, or run the tests, on a fresh machine.
#
#   ./run_all.sh --quick    a short CIFAR-10 multi-GPU train + eval (a few minutes on 2 CPU cores)
#   ./run_all.sh --test     the test suite (what CI runs)
#
# Both create or refresh .venv (python3 -m venv, pip install -e '.[test]') when needed.
# Data: $TF_CLASSICS_DATA if set, else ../shared/data when it exists, else each script's
# default folder (downloaded there on first use).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)

usage() {
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
}

die() { echo "run_all.sh: error: $*" >&2; exit 2; }

ensure_venv() {
  local stamp=.venv/.tf-classics-installed want
  want=$(cat setup.py | sha256sum | cut -c1-16)
  if [ -x .venv/bin/python ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return
  fi
  echo "run_all.sh: setting up .venv (tensorflow-cpu 2.21 and the project; a few minutes the first time)"
  python3 -m venv .venv
  if ! .venv/bin/python -m pip install -q -e '.[test]' >.venv/install.log 2>&1; then
    tail -20 .venv/install.log >&2
    die "pip install failed; the full log is in .venv/install.log"
  fi
  echo "$want" >"$stamp"
}

choose_data() {
  if [ -z "${TF_CLASSICS_DATA:-}" ] && [ -d ../shared/data ]; then
    TF_CLASSICS_DATA=$(cd ../shared/data && pwd)
  fi
  if [ -n "${TF_CLASSICS_DATA:-}" ]; then
    [ -d "$TF_CLASSICS_DATA" ] || die "TF_CLASSICS_DATA=$TF_CLASSICS_DATA is not a folder"
    export TF_CLASSICS_DATA
  fi
}

run_quick() {
  local out=${OUT_DIR:-runs/quick} start end
  mkdir -p "$out"
  out=$(cd "$out" && pwd)
  echo "run_all.sh --quick: CIFAR-10, 2 towers, 100 steps, then eval on 1,000 test images -> $out"
  start=$(date +%s)
  .venv/bin/python cifar10/multi_gpu_train.py --fresh --num_gpus=2 --max_steps=100 \
      --batch_size=64 --checkpoint_steps=50 --min_fraction_of_examples_in_queue=0.02 \
      --train_dir="$out/cifar10_train" 2>"$out/cifar10_train.stderr" | tee "$out/cifar10_train.log" \
      || { tail -5 "$out/cifar10_train.stderr" >&2; die "training failed (log: $out)"; }
  .venv/bin/python cifar10/eval.py --run_once --num_examples=1000 \
      --checkpoint_dir="$out/cifar10_train" --eval_dir="$out/cifar10_eval" \
      2>"$out/cifar10_eval.stderr" | tee "$out/cifar10_eval.log" \
      || { tail -5 "$out/cifar10_eval.stderr" >&2; die "evaluation failed (log: $out)"; }
  end=$(date +%s)
  local precision
  precision=$(sed -n 's/.*precision @ 1 = //p' "$out/cifar10_eval.log" | tail -1)
  echo
  echo "| experiment | steps | precision @ 1 | wall time |"
  echo "|---|---|---|---|"
  echo "| cifar10 (quick: 2 towers x 64, 1,000 test images) | 100 | $precision | $((end - start)) s |"
  echo
  echo "TensorBoard: .venv/bin/tensorboard --logdir $out"
}

run_tests() {
  .venv/bin/python -m pytest -q tests "$@"
}

[ $# -ge 1 ] || { usage; exit 2; }
case "$1" in
  --help|-h) usage ;;
  --quick) shift; [ $# -eq 0 ] || die "unknown option: $1"; ensure_venv; choose_data; run_quick ;;
  --test) shift; ensure_venv; choose_data; run_tests "$@" ;;
  *) die "unknown option: $1 (use --quick, --test or --help)" ;;
esac
