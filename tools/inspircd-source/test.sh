#!/bin/sh
# make test's part for InspIRCd built from source (make test-source):
#
#   test.sh SUITE_SOURCE [SMOKE_SOURCE...]
#   test.sh --suite SUITE_SOURCE       only the first part
#   test.sh --smoke [SMOKE_SOURCE...]  only the second (make test runs both at once)
#
# SUITE_SOURCE (a tarball or tree; empty for none): InspIRCd built from it with the stock
# modules the suite loads (tools/inspircd-source/source.sh server, cached), this module
# built for it (make INSPIRCD_SOURCE=...), the whole integration suite (tests/it: this
# module and that release's stock one), then the in-tree build (intree-test.sh).
# Each SMOKE_SOURCE: the server and core modules only, this module built for it, and
# tests/it/smoke.rs.
#
# Says what ran and what was skipped, and why, and appends that to $SERVERS_TESTED if
# set (make test prints that file at the end); exits non-zero when a test fails.
# $IT_BINARY, when set, is the integration suite's test binary, built beforehand (make
# test runs several suites at once, and cargo holds its build directory while it runs
# one); otherwise `cargo test --test it` builds and runs it.
set -eu
cd "$(dirname "$0")/../.."
top=$(pwd)
cargo=${CARGO:-cargo}
summary=${SERVERS_TESTED:-/dev/null}
logs=$top/target/source-tests
mkdir -p "$logs"

say() { echo "$*" | tee -a "$summary"; }

# The version SOURCE's tree reports (InspIRCd-4.11.0).
version_of() { sh "$(tools/inspircd-source/source.sh tree "$1")/src/version.sh"; }

# run_tests NAME PREFIX MODULE [FILTER]: tests/it with the server in PREFIX and MODULE as
# this module; prints "N passed (ours A, stock B)" from cargo's lines.
run_tests() {
	name=$1 prefix=$2 module=$3 filter=${4:-}
	log=$logs/$name.log
	# shellcheck disable=SC2086
	if [ -n "${IT_BINARY:-}" ]; then
		set -- "$IT_BINARY" $filter
	else
		set -- "$cargo" test --test it $filter
	fi
	if ! INSPIRCD=source INSPIRCD_PREFIX="$prefix" WS_MODULE="$module" "$@" > "$log" 2>&1; then
		grep -E '^test .* FAILED$|^failures:|panicked' "$log" | head -n 40 >&2
		say "FAILED: $name: tests/it${filter:+ $filter} (log: ${log#$top/})"
		exit 1
	fi
	passed=$(grep -c '^test .* \.\.\. ok$' "$log" || true)
	stock=$(grep -c '^test .*stock.* \.\.\. ok$' "$log" || true)
	ignored=$(grep -c '^test .* \.\.\. ignored' "$log" || true)
	echo "$passed passed (ours $((passed - stock)), stock $stock), $ignored ignored"
}

module_for() {
	make --no-print-directory all INSPIRCD_SOURCE="$1" >&2
	make --no-print-directory -s print-module INSPIRCD_SOURCE="$1"
}

do_suite=yes do_smoke=yes
case "${1:-}" in
	--suite) do_smoke=no; shift ;;
	--smoke) do_suite=no; shift; set -- "" "$@" ;;
esac
suite=${1:-}
[ $# -gt 0 ] && shift
if [ "$do_suite" = no ]; then
	:
elif [ -z "$suite" ]; then
	say "skipped: InspIRCd built from source: no INSPIRCD_SOURCE given (e.g. make test INSPIRCD_SOURCE=/path/to/inspircd-4.11.0.tar.xz)"
else
	version=$(version_of "$suite")
	start=$(date +%s)
	prefix=$(tools/inspircd-source/source.sh server "$suite")
	module=$(module_for "$suite")
	built=$(($(date +%s) - start))
	echo "Integration suite on $version built from $suite (server $prefix, module $module)"
	start=$(date +%s)
	counts=$(run_tests "$version-suite" "$prefix" "$top/$module")
	say "ran: $version built from $suite: the integration suite, $counts ($(($(date +%s) - start)) s; builds $built s)"
	start=$(date +%s)
	tools/inspircd-source/intree-test.sh "$suite" > "$logs/$version-intree.log" 2>&1 || {
		tail -n 40 "$logs/$version-intree.log" >&2
		say "FAILED: $version built from $suite: the in-tree build (log: ${logs#$top/}/$version-intree.log)"
		exit 1
	}
	grep '^PASS' "$logs/$version-intree.log"
	say "ran: $version built from $suite with this module inside InspIRCd's build (intree/): configure, make install, the smoke test ($(($(date +%s) - start)) s)"
fi

if [ "$do_smoke" = no ]; then
	exit 0
fi
if [ $# = 0 ]; then
	say "skipped: smoke tests on further InspIRCd sources: no INSPIRCD_SMOKE_SOURCES given"
fi
for source in "$@"; do
	version=$(version_of "$source")
	start=$(date +%s)
	prefix=$(tools/inspircd-source/source.sh core "$source")
	module=$(module_for "$source")
	built=$(($(date +%s) - start))
	start=$(date +%s)
	counts=$(run_tests "$version-smoke-$(basename "$source")" "$prefix" "$top/$module" smoke::)
	say "ran: $version built from $source: the smoke test, $counts ($(($(date +%s) - start)) s; builds $built s)"
done
