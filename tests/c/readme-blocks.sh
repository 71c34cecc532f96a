#!/usr/bin/env bash
# Every ```c block of README.md is a complete program: extract each one and compile and link
# it against the installed header and library (the flags come from pkg-config, as a user's).
#   bash tests/c/readme-blocks.sh OUTDIR CC CFLAGS... -- LIBS...
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out=$1 cc=$2
shift 2
cflags=() libs=()
while (($#)) && [[ $1 != -- ]]; do cflags+=("$1"); shift; done
(($#)) && shift
libs=("$@")
mkdir -p "$out"
rm -f "$out"/readme-*.c
awk -v out="$out" '
	/^```c$/ { n++; file = sprintf("%s/readme-%d.c", out, n); start = NR; printf "" > file; next }
	/^```/ && file { close(file); file = ""; next }
	file { print > file }
' "$root/README.md"
shopt -s nullglob
blocks=("$out"/readme-*.c)
((${#blocks[@]} > 0)) || { echo "readme-blocks: no \`\`\`c block in README.md" >&2; exit 1; }
fails=0
for src in "${blocks[@]}"; do
	if "$cc" "${cflags[@]}" "$src" "${libs[@]}" -o "${src%.c}"; then
		echo "PASS  README.md block $(basename "$src" .c) compiles and links"
	else
		echo "FAIL  README.md block $(basename "$src" .c) ($src)"
		fails=$((fails + 1))
	fi
done
((fails == 0))
