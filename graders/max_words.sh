#!/bin/sh
# costbench command grader: passes when the output has at most N words (first argument).
# The JSON is read by python3's json module (never by eval or string surgery in the shell); the
# output only ever travels through pipes, never through a command line. See graders/README.md.
set -eu
max=${1:?usage: max_words.sh N}
case $max in '' | *[!0-9]*) echo "N must be a whole number, got $max" >&2; exit 2 ;; esac
words=$(python3 -c 'import json, sys; print(len(str(json.load(sys.stdin)["output"]).split()))')
if [ "$words" -le "$max" ]; then pass=true; else pass=false; fi
# score = min(1, max / words), printed with awk so no floating point is needed in sh.
score=$(awk -v m="$max" -v w="$words" 'BEGIN { s = (w == 0 ? 1 : m / w); if (s > 1) s = 1; printf "%.4f", s }')
printf '{"pass": %s, "score": %s, "reason": "%s words (max %s)"}\n' "$pass" "$score" "$words" "$max"
