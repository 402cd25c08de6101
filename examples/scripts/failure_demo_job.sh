#!/usr/bin/env bash
# A stand-in for a flaky simulation. With probability --fail-rate it fails with a
# "recoverable" exit code picked at random: 10 (did not converge), 11 (out of a resource)
# or 12 (transient). Otherwise it works for a moment and succeeds.
set -euo pipefail

fail_rate=0.5
while [[ $# -gt 0 ]]; do
    case "$1" in
        --fail-rate) fail_rate="$2"; shift 2 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

echo "job ${TORC_JOB_NAME:-?} (id ${TORC_JOB_ID:-?}) attempt ${TORC_ATTEMPT_ID:-?} on $(hostname)"
# RANDOM is 0..32767; compare against the rate scaled to that range.
threshold=$(awk -v r="$fail_rate" 'BEGIN { printf "%d", r * 32768 }')
if (( RANDOM < threshold )); then
    codes=(10 11 12)
    code=${codes[$(( RANDOM % 3 ))]}
    echo "simulated failure, exit code $code" >&2
    exit "$code"
fi
sleep 0.$(( RANDOM % 5 ))
echo "finished fine"
