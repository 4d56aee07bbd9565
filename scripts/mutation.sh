#!/usr/bin/env bash
# Mutation score of some modules of src/agegender against some test files (docs/mutation.md).
#
#   scripts/mutation.sh NAME "MODULES" "TESTS" [CHILDREN]
#   e.g. scripts/mutation.sh pure "metrics.py leakage.py" "tests/test_metrics.py tests/test_leakage.py"
#
# Optional: PYTEST_K, a pytest -k expression narrowing TESTS; MUTANTS, mutmut mutant-name
# patterns (e.g. "agegender.timeline.x_viterbi__mutmut_*") to run only those mutants;
# DO_NOT_MUTATE, a regex of source lines whose statements stay unmutated (layers.py needs
# 'def __init__\(': mutmut's trampoline hides a Layer constructor's signature from Keras);
# FORKSERVER=1 for tests that run TensorFlow: mutmut then forks each mutant from a process
# that has not run TF (a fork of one that has hangs in TF's thread pools).
#
# Runs mutmut 3 (pip install mutmut; not a project requirement) in a scratch copy of the
# working tree, ${MUTATION_DIR:-/tmp/agegender-mutation}/NAME, so the repository gets no
# setup.cfg and no mutants/ folder. Prints mutmut's per-mutant results; the summary line
# counts killed (and timed-out) against all mutants.
set -euo pipefail
name=$1 modules=$2 tests=$3 children=${4:-2}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${MUTATION_DIR:-/tmp/agegender-mutation}/$name
mutmut=${MUTMUT:-mutmut}
rm -rf "$work" && mkdir -p "$work"
# The tracked and untracked-but-not-ignored files: what a clone plus local edits holds.
(cd "$repo" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$work")
{
  echo "[mutmut]"
  echo "source_paths = src"
  printf 'only_mutate =\n'; for m in $modules; do printf '    src/agegender/%s\n' "$m"; done
  printf 'pytest_add_cli_args_test_selection =\n'; for t in $tests; do printf '    %s\n' "$t"; done
  if [ -n "${PYTEST_K:-}" ]; then printf '    -k\n    %s\n' "$PYTEST_K"; fi
  printf 'pytest_add_cli_args =\n    -p\n    no:cacheprovider\n'
  echo "use_git_change_detection = false"
  # mutmut copies src/ and tests/ into mutants/; the shipped models are test data too.
  printf 'also_copy =\n    models\n'

  if [ -n "${DO_NOT_MUTATE:-}" ]; then printf 'do_not_mutate_patterns =\n    %s\n' "$DO_NOT_MUTATE"; fi
  if [ -n "${FORKSERVER:-}" ]; then
    echo "process_isolation = forkserver"
    echo "forkserver_warmup = collect"
  fi
} > "$work/setup.cfg"
cd "$work"
export MPLBACKEND=Agg TF_CPP_MIN_LOG_LEVEL=2
# shellcheck disable=SC2086  # MUTANTS is a list of patterns
"$mutmut" run --max-children "$children" ${MUTANTS:-} || true
"$mutmut" results --all true > results.txt 2>&1 || true
killed=$(grep -c ': killed$\|: timeout$' results.txt || true)
total=$(grep ': ' results.txt | grep -vc ': not checked$' || true)
echo "$name: $killed of $total mutants killed (results: $work/results.txt)"
