#!/usr/bin/env bash
# Append pytest's closing line (and the -ra short summary) of a CI cell to the job summary.
# Usage: .github/pytest-summary.sh TITLE PYTEST_LOG
set -euo pipefail
title=$1
log=$2
summary=${GITHUB_STEP_SUMMARY:-/dev/stdout}
{
    echo "### $title"
    echo '```'
    if [ -f "$log" ]; then
        # Colour codes out; the short test summary info (-ra) down to the closing line, or the
        # closing line alone when there is no short summary.
        plain=$(sed -e 's/\x1b\[[0-9;]*m//g' "$log")
        if grep -q 'short test summary info' <<<"$plain"; then
            sed -n '/short test summary info/,$p' <<<"$plain" | tail -40
        else
            grep -E '^=+ .*(passed|failed|error|skipped|no tests ran).* =+$' <<<"$plain" | tail -1 || true
        fi
    else
        echo "no pytest log: the cell failed before the tests"
    fi
    echo '```'
} >>"$summary"
