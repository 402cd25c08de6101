#!/usr/bin/env bash
# Runs before a failed job is retried. torc passes what happened in TORC_* variables;
# exiting non-zero here marks the job failed instead of retrying it.
set -euo pipefail

log="${TORC_OUTPUT_DIR:-.}/recovery.log"
printf '%s job=%s id=%s attempt=%s exit=%s\n' "$(date -Is)" "$TORC_JOB_NAME" "$TORC_JOB_ID" \
    "$TORC_ATTEMPT_ID" "$TORC_RETURN_CODE" >> "$log"

case "$TORC_RETURN_CODE" in
    10) echo "did not converge: a real script would loosen tolerances here" ;;
    11) echo "ran out of a resource: a real script would clean scratch space here" ;;
    *)  echo "nothing to fix for exit code $TORC_RETURN_CODE; retrying as is" ;;
esac
