#!/usr/bin/env bash
# The step of action.yml: mocli check on MOCLI_INPUTS with each line of MOCLI_FAIL_IF as a
# --fail-if, a JUnit report (MOCLI_JUNIT) and the step summary ($GITHUB_STEP_SUMMARY).
# Its exit status is mocli's: 0 every check passed, 1 one failed, 2 bad usage or input.
set -euo pipefail
cmd=(mocli check)
read -r -a paths <<< "${MOCLI_INPUTS:?give the action its inputs: the rollout paths}"
cmd+=("${paths[@]}")
while IFS= read -r expr; do
  expr="${expr#"${expr%%[![:space:]]*}"}"
  [ -n "$expr" ] && cmd+=(--fail-if "$expr")
done <<< "${MOCLI_FAIL_IF:-}"
[ -n "${MOCLI_CONFIG:-}" ] && cmd+=(--config "$MOCLI_CONFIG")
if [ -n "${MOCLI_ARGS:-}" ]; then
  read -r -a extra <<< "$MOCLI_ARGS"
  cmd+=("${extra[@]}")
fi
cmd+=(--junit "${MOCLI_JUNIT:-mocli-check.xml}")
[ -n "${GITHUB_STEP_SUMMARY:-}" ] && cmd+=(--summary "$GITHUB_STEP_SUMMARY")
exec "${cmd[@]}"
