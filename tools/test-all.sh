#!/usr/bin/env bash
# make test's suites, all at once (run by `make test` after lint and the module builds):
#
#   tools/test-all.sh [INSPIRCD_SOURCE [SMOKE_SOURCE...]]
#
# The suites mostly wait (on timers, sockets and other processes), so running them side
# by side keeps two cores busy where one after the other would leave them idle. The test
# binaries are built first: cargo holds its build directory while it runs tests, so the
# suites run the binaries themselves. Each suite writes its own log under
# target/test-logs/ and prints one line when it ends; a failed suite's log tail follows.
# At the end: every suite's result, then the servers that ran and those skipped, and why.
# Exits non-zero when any suite failed.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
cargo=${CARGO:-cargo}
suite_source=${1:-}
[ $# -gt 0 ] && shift
logs=$top/target/test-logs
servers=$logs/servers.txt
rm -rf "$logs"
mkdir -p "$logs"
: > "$servers"

# The executable of test target $1 of the module's crate, from cargo's build messages.
test_binary() {
	INSPIRCD=3 "$cargo" test --no-run --message-format=json --test "$1" 2>/dev/null |
		python3 -c '
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact" and message.get("executable") \
            and message["target"]["name"] == sys.argv[1]:
        print(message["executable"])' "$1"
}

echo "Building the test binaries and the conformance echo server"
INSPIRCD=3 "$cargo" test --no-run --quiet
"$cargo" test -p testkit --lib --no-run --quiet
it=$(test_binary it)
[ -x "$it" ] || { echo "no test binary for tests/it" >&2; exit 1; }
"$cargo" build --quiet --release --example autobahn_echo

pids=()
names=()
# suite NAME COMMAND...: runs the command in the background into target/test-logs/NAME.log.
suite() {
	local name=$1
	shift
	(
		start=$(date +%s)
		if "$@" > "$logs/$name.log" 2>&1; then
			result=ok
		else
			result=FAILED
		fi
		# cargo's "test result: ok. N passed" lines, or Autobahn's "conformance: N passed".
		passed=$({ grep -oE '^(test result: [a-zA-Z]*\.|conformance:) [0-9]+ passed' "$logs/$name.log" || true; } |
			awk '{ n += $(NF - 1) } END { print n + 0 }')
		line="$result: $name ($(($(date +%s) - start)) s"
		[ "$passed" -gt 0 ] && line="$line, $passed tests passed"
		echo "$line)" | tee -a "$logs/results.txt"
		if [ "$result" != ok ]; then
			echo "--- last lines of target/test-logs/$name.log:"
			grep -E '^test .* FAILED$|panicked|^failures:|UNEXPECTED|FAILED:' "$logs/$name.log" | head -n 40 || true
			tail -n 20 "$logs/$name.log"
			exit 1
		fi
	) &
	pids+=($!)
	names+=("$name")
}

debian12=$(sed -n 's/^#define INSPIRCD_VERSION "\(.*\)"/\1/p' /usr/include/inspircd/config.h)
debian13="InspIRCd $(cat target/inspircd4/ready)"

suite "unit and property tests" sh -c \
	"INSPIRCD=3 '$cargo' test --lib --test fuzz_corpus_replay --test idle_memory && '$cargo' test -p testkit --lib"
suite "integration suite on $debian12 (Debian 12)" env INSPIRCD=3 "$it"
suite "integration suite on $debian13 (Debian 13)" env INSPIRCD=4 "$it"
suite "Autobahn|Testsuite" ./conformance/run.sh --ci
# After `make`, `make install` needs neither cargo nor the network: sudo's PATH, which
# holds no rustup cargo, and CARGO=false, which fails if anything runs it.
# (suite runs this in an `if`, where the shell ignores set -e: every step says || return.)
install_without_cargo() {
	local into module
	into=$(mktemp -d)
	for server in 3 4; do
		module=$(make --no-print-directory -s print-module INSPIRCD=$server INSPIRCD_SOURCE=) || return 1
		env PATH=/usr/sbin:/usr/bin:/sbin:/bin make --no-print-directory install \
			INSPIRCD=$server INSPIRCD_SOURCE= CARGO=false DESTDIR="$into/$server" MODULEDIR=/modules ||
			return 1
		cmp "$module" "$into/$server/modules/m_websocket.so" || return 1
		echo "InspIRCd $server: $module installed without cargo"
	done
	rm -rf "$into"
}
suite "make install without cargo" install_without_cargo
source_tests() {
	env SERVERS_TESTED="$servers" IT_BINARY="$it" CARGO="$cargo" tools/inspircd-source/test.sh "$@"
}
if [ -n "$suite_source" ]; then
	suite "InspIRCd built from $(basename "$suite_source")" source_tests --suite "$suite_source"
else
	source_tests --suite ""
fi
if [ $# -gt 0 ]; then
	suite "smoke tests on InspIRCd built from source" source_tests --smoke "$@"
else
	source_tests --smoke
fi

failed=0
for i in "${!pids[@]}"; do
	wait "${pids[$i]}" || failed=1
done

echo
echo "Suites:"
sort "$logs/results.txt" | sed 's/^/  /'
echo "Servers:"
for debian in "$debian12 (Debian 12)" "$debian13 (Debian 13)"; do
	if grep -q "^ok: integration suite on $debian " "$logs/results.txt"; then
		echo "ran: $debian: the whole integration suite, this module and the stock one"
	else
		echo "FAILED: $debian: the whole integration suite"
	fi
done | sed 's/^/  /'
sed 's/^/  /' "$servers"
exit "$failed"
