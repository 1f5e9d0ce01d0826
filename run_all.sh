#!/usr/bin/env bash
# run_all.sh: rerun the whole report (results table and charts), or run the tests.
#
#   ./run_all.sh                     every experiment, full settings (hours: CIFAR-10 dominates)
#   ./run_all.sh --quick             the same experiments, tiny step counts (a few minutes),
#                                    in <out>/quick/ (full runs: <out>/, default runs/)
#   ./run_all.sh --only a,b --list --seeds N --out DIR    (see --help)
#   ./run_all.sh --publish --out DIR  finished full-length runs -> results/, results/RESULTS.md
#   ./run_all.sh --test              the test suite (what CI runs)
#
# Each creates or refreshes .venv (python3 -m venv, pip install -e '.[test]') when needed;
# --list needs none (python3 alone prints the names).
# Data: $TF_CLASSICS_DATA if set, else ../shared/data when it exists, else ./data (downloaded
# there on first use).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)

usage() {  # the comment at the top, whole
  sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'
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

choose_data() {  # common/data.py's data_root() decides
  TF_CLASSICS_DATA=$(.venv/bin/python -c 'from common.data import data_root; print(data_root())')
  mkdir -p "$TF_CLASSICS_DATA" 2>/dev/null || true
  [ -d "$TF_CLASSICS_DATA" ] || die "TF_CLASSICS_DATA=$TF_CLASSICS_DATA is not a folder"
  export TF_CLASSICS_DATA
}

run_tests() {  # two processes (pytest-xdist), a test file each at a time: most of a test's time
  # is one TensorFlow process starting and building its graph on one core
  .venv/bin/python -m pytest -q -n 2 --dist loadfile tests "$@"
}

for arg in "$@"; do  # the names need no venv: tools.report --list uses the standard library
  if [ "$arg" = --list ]; then exec python3 -m tools.report "$@"; fi
done

case "${1:-}" in
  --help|-h) usage; echo; ensure_venv; .venv/bin/python -m tools.report --help ;;
  --test) shift; ensure_venv; choose_data; run_tests "$@" ;;
  *) ensure_venv; choose_data; exec .venv/bin/python -m tools.report "$@" ;;
esac
