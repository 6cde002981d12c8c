#!/usr/bin/env bash
# Runs every Go fuzz target under data, vision, train and torch for
# FUZZTIME each (default 5s): `make fuzz`, part of `make test`.
#
# A target fails when the fuzzer finds an input (it writes it under
# testdata/fuzz/ and prints "Failing input written to"), or on any other
# error. One failure is retried once: a bare "context deadline exceeded"
# with no failing input, which Go's fuzzing coordinator (Go 1.26) reports
# when a busy worker misses the end of a duration -fuzztime
# (go.dev/issue/75804); it finds nothing, and the retry proves it.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
fuzztime=${FUZZTIME:-5s}
dirs=(data vision train torch)

targets=$(grep -rhoE '^func Fuzz[A-Za-z0-9_]+' --include='*_test.go' "${dirs[@]}" 2>/dev/null | sed 's/^func //' | sort -u)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for target in $targets; do
	pkg=$(grep -rlE "^func $target\b" --include='*_test.go' "${dirs[@]}" | head -1 | xargs dirname)
	for try in 1 2; do
		echo "fuzz $target in ./$pkg for $fuzztime"
		if "$GO" test -run='^$' -fuzz="^$target\$" -fuzztime="$fuzztime" "./$pkg" 2>&1 | tee "$log"; then
			break
		fi
		if [ "$try" = 1 ] && grep -q 'context deadline exceeded' "$log" && ! grep -qE 'Failing input written|panic:' "$log"; then
			echo "fuzz: $target stopped with Go's fuzztime deadline race (no failing input); running it again"
			continue
		fi
		exit 1
	done
done
