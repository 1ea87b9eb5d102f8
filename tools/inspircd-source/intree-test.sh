#!/bin/sh
# The in-tree build, tested: this module put into the InspIRCd source tree of SOURCE
# (make dist's files, intree/install.sh) in place of its stock websocket module, built
# and installed by InspIRCd's own make install into a root of its own, that server
# started, and the smoke test run against the module it installed (tests/it/smoke.rs: a
# close frame on QUIT, which only this module sends, tells it from the stock one).
#
#   intree-test.sh SOURCE       (a tarball or tree; tools/inspircd-source/source.sh)
#
# The tree is the cached one the suite's server was configured and built in (source.sh
# server), as an admin who built InspIRCd adds the module and runs make install again:
# InspIRCd's make then compiles only what changed. It builds in a build directory of its
# own (BUILDPATH, first copied from the server's, which it never touches), installs with
# DESTDIR (the cached server's prefix stays as it is), with INSPIRCD_TARGET naming the
# targets the server was built with, m_websocket among them. The tree gets its stock
# module back at the end (intree/install.sh --remove).
#
# Prints PASS lines; exits non-zero on the first failure.
set -eu
cd "$(dirname "$0")/../.."
top=$(pwd)
source=${1:?usage: $0 SOURCE}
cargo=${CARGO:-cargo}
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "PASS: $*"; }

prefix=$(tools/inspircd-source/source.sh server "$source")
cache=$(tools/inspircd-source/source.sh cache "$source")
tree=$cache/tree/$(cat "$cache/tree.name")
targets=$(cat "$cache/server.built")
version=$(sh "$tree/src/version.sh")

# The module's source as its tarball has it, crates vendored (no network in the build).
stage=$top/target/intree
CARGO=$cargo tools/package/dist.sh --stage "$stage"
project=$(ls -d "$stage"/inspircd-websocket-*)

# The cached tree is shared with source.sh: hold its lock while the module is in it.
exec 9>"$cache/lock"
flock 9
restore() { "$project/intree/install.sh" --remove "$tree" > /dev/null; }
trap restore EXIT

echo "== intree/install.sh $tree"
"$project/intree/install.sh" "$tree"
[ "$(head -c 200 "$tree/src/modules/m_websocket.cpp.stock")" != "$(head -c 200 "$tree/src/modules/m_websocket.cpp")" ] ||
	fail "src/modules/m_websocket.cpp is still the stock one"
pass "the module is in the tree, the stock src/modules/m_websocket.cpp kept as m_websocket.cpp.stock"

stock_build=$(ls -d "$tree"/build/*/ | head -n 1)
build=$cache/intree-build
if [ ! -d "$build" ]; then
	cp -a "$stock_build" "$build"
fi
root=$cache/intree-root
rm -rf "$root"
echo "== make install (InspIRCd's) in $tree: BUILDPATH=$build INSPIRCD_TARGET=\"$targets\" DESTDIR=$root"
(cd "$tree" && BUILDPATH=$build INSPIRCD_TARGET="$targets" INSPIRCD_VERBOSE=1 CARGO_TARGET_DIR=$cache/intree-cargo \
	make install DESTDIR="$root") > "$cache/intree-make.log" 2>&1 ||
	{ tail -n 40 "$cache/intree-make.log"; fail "make install with the module in the tree"; }
grep -E 'src/modules/m_websocket.cpp|INSTALL COMPLETE' "$cache/intree-make.log" | cut -c1-300
installed=$root$prefix
so=$installed/modules/m_websocket.so
[ -f "$so" ] && [ -x "$installed/bin/inspircd" ] || fail "make install put no bin/inspircd and modules/m_websocket.so under $installed"
pass "InspIRCd's make install built and installed $version with the module: ${so#$root}"

# Only the three symbols InspIRCd looks up.
exported=$(nm -D --defined-only "$so" | awk '{print $3}' | sort | tr '\n' ' ')
[ "$exported" = "inspircd_module_abi inspircd_module_init inspircd_module_version " ] ||
	fail "$so exports: $exported"
pass "it exports only $exported"
if cmp -s "$so" "$prefix/modules/m_websocket.so"; then
	fail "the installed m_websocket.so is the stock module"
fi

echo "== the smoke test against that installation"
INSPIRCD=source INSPIRCD_PREFIX="$installed" WS_MODULE="$so" "$cargo" test --test it smoke:: > "$cache/intree-smoke.log" 2>&1 ||
	{ tail -n 30 "$cache/intree-smoke.log"; fail "the smoke test against the in-tree module"; }
grep -E '^test |^test result' "$cache/intree-smoke.log"
pass "the server installed by make install loads the module: 101, 001, pings, close frame on QUIT"
