#!/usr/bin/env bash
# Times the stages of `make test`.
#
#   tools/stage.sh FILE NAME COMMAND...   runs COMMAND, prints `==> stage NAME: N s`, and adds
#                                         the figure to FILE; when COMMAND fails, prints the
#                                         table so far and exits with its status
#   tools/stage.sh --table FILE           prints every stage in FILE with its time and the total
set -uo pipefail

table() {
  echo
  echo "==> stages"
  awk -F'\t' '{ printf "    %-6s %6d s  %s\n", $1, $2, $3; total += $2 }
    END { printf "    %-6s %6d s\n", "total", total }' "$1"
}

if [ "${1:-}" = "--table" ]; then
  table "$2"
  exit 0
fi

file=$1
name=$2
shift 2
start=$(date +%s)
"$@"
status=$?
secs=$(( $(date +%s) - start ))
if [ "$status" -eq 0 ]; then
  printf '%s\t%s\t%s\n' "$name" "$secs" "ok" >>"$file"
  echo "==> stage $name: $secs s"
else
  printf '%s\t%s\t%s\n' "$name" "$secs" "failed (exit $status)" >>"$file"
  echo "==> stage $name: failed after $secs s"
  table "$file"
fi
exit "$status"
