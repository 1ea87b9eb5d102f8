#!/bin/bash
# make package-test: the source tarball and the Debian packages, end to end.
#
#  1. make dist (tools/package/dist.sh).
#  2. The tarball builds offline: unpacked, `make` under `unshare -n` (no network
#     but loopback) with CARGO_HOME an empty directory (no registry cache to help).
#  3. For Debian 12 (InspIRCd 3.15) and Debian 13 (4.7): a clean build root of that
#     release made by mmdebstrap (--variant=buildd, the release's own security updates
#     in its sources) with `apt-get build-dep` of debian/control, so Debian's cargo and
#     rustc and nothing else (no rustup); for Debian 13 also the {fmt} headers of its
#     inspircd source package (apt-get source). Cached as target/package-roots/
#     build-SUITE-HASH.tar (HASH: debian/control's). In it, dpkg-buildpackage from the
#     unpacked tarball with no network (unshare -n); lintian on the result (no error or
#     warning may remain; debian/README.source and the overrides explain the rest).
#  4. In a clean root of that release made by mmdebstrap with `inspircd` installed
#     (cached as target/package-roots/SUITE.tar; delete it to make a fresh one):
#     dpkg -i the package; the diversion is listed, the stock module is at
#     m_websocket.so.stock and m_websocket.so is the package's (md5sums); the
#     release's InspIRCd (chroot, on a free 127.0.0.1 port) loads it, and a WebSocket
#     client on the host (ws_register.py) upgrades, registers (001) and gets a close
#     frame after QUIT, which only this module sends; the server is stopped by its
#     PID. Then the package installed again over itself and inspircd's own .deb
#     reinstalled (an inspircd upgrade): the diversion holds, our module stays, the
#     stock one lands at .stock. Last, dpkg --purge: no diversion, and the stock
#     module is back at m_websocket.so, identical to inspircd's md5sums.
#
# Prints PASS/FAIL lines and each step's time; exits non-zero on the first failure.
# Needs root, network access to deb.debian.org and crates.io (or cargo's registry
# cache) for steps 1 and 3's roots, and: mmdebstrap, dpkg-dev, debhelper, lintian,
# python3, xz-utils.
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$(pwd)
export CARGO=${CARGO:-$(command -v cargo || echo "$HOME/.cargo/bin/cargo")}
work=$top/target/package-test
roots=$top/target/package-roots
module=/usr/lib/inspircd/modules/m_websocket.so
server_pid=

t_start=$(date +%s)
step_start=$t_start
current="setup"
failed=0

step() {
	current=$1
	step_start=$(date +%s)
	echo
	echo "=== $current"
}
step_done() {
	echo "PASS: $current ($(($(date +%s) - step_start)) s)"
}
pass() { echo "PASS: $*"; }
fail() {
	echo "FAIL: $*" >&2
	exit 1
}
cleanup() {
	local rc=$?
	if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	if [ "$rc" != 0 ]; then
		echo "FAIL: make package-test: $current (after $(($(date +%s) - t_start)) s)" >&2
	fi
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || fail "make package-test needs root (chroot, mmdebstrap roots, dpkg -i in them)"
missing=
for tool in mmdebstrap dpkg-buildpackage dh lintian python3 xz unshare; do
	command -v "$tool" >/dev/null || missing="$missing $tool"
done
[ -z "$missing" ] || fail "missing:$missing (apt-get install mmdebstrap dpkg-dev debhelper lintian python3 xz-utils)"

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
base=inspircd-websocket-$version
tarball=$top/target/dist/$base.tar.xz
rm -rf "$work"
mkdir -p "$work" "$roots"

# Unpacks the tarball into a fresh DIR.
unpack() {
	rm -rf "$1"
	mkdir -p "$1"
	tar -xJf "$tarball" -C "$1"
}

# ---------------------------------------------------------------------------------
step "make dist"
tools/package/dist.sh target/dist
[ -f "$tarball" ] || fail "no $tarball"
echo "tarball: ${tarball#$top/}, $(stat -c %s "$tarball") bytes"
listing=$(tar -tJf "$tarball")
if grep -qE "^$base/(fuzz|tests|benches|tools|target|\.git)/" <<<"$listing"; then
	fail "the tarball holds dev-only files"
fi
grep -q "^$base/vendor/.*/.cargo-checksum.json$" <<<"$listing" || fail "no vendored crates in the tarball"
echo "$(grep -c . <<<"$listing") entries, $(grep -c '/.cargo-checksum.json$' <<<"$listing") vendored crates"
step_done

# ---------------------------------------------------------------------------------
step "offline build from the tarball (unshare -n, empty CARGO_HOME, make)"
unpack "$work/offline"
empty_home=$work/offline/cargo-home
mkdir -p "$empty_home"
# Inside: only loopback, and it is down. cargo runs --frozen (the Makefile's default in
# the tarball) from vendor/ (.cargo/config.toml).
(cd "$work/offline/$base" &&
	unshare -n sh -c 'echo "network interfaces inside: $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " " | tr "\n" " ")"; exec env CARGO_HOME="$1" make' sh "$empty_home") \
	> "$work/offline/build.log" 2>&1 || { tail -n 30 "$work/offline/build.log"; fail "offline make from the tarball"; }
grep -E '^network interfaces inside|cargo build' "$work/offline/build.log"
so=$work/offline/$base/m_websocket.so
[ -f "$so" ] || fail "offline make built no m_websocket.so"
nm -D --defined-only "$so" | grep -q ' inspircd_module_init$' || fail "$so exports no inspircd_module_init"
[ -z "$(ls -A "$empty_home" | grep -v '^\.package-cache' || true)" ] ||
	echo "note: cargo wrote to the empty CARGO_HOME: $(ls -A "$empty_home" | tr '\n' ' ')"
pass "m_websocket.so built offline ($(stat -c %s "$so") bytes)"
step_done

# ---------------------------------------------------------------------------------
# build_root SUITE: a fresh copy of the cached build root of SUITE in $work/build-SUITE
# ($build_root): buildd essentials and debian/control's Build-Depends, from Debian's
# archive only; for trixie also /opt/inspircd-fmt/fmt, the {fmt} headers of its
# inspircd source package.
build_root() {
	local suite=$1 hash cache
	hash=$(sha256sum debian/control | cut -c1-12)
	cache=$roots/build-$suite-$hash.tar
	if [ ! -s "$cache" ]; then
		echo "making the $suite build root (mmdebstrap, cached as ${cache#$top/})"
		local hooks=()
		if [ "$suite" = trixie ]; then
			hooks+=(--customize-hook='chroot "$1" sh -ec "mkdir -p /tmp/src /opt/inspircd-fmt/fmt && cd /tmp/src && apt-get -o APT::Sandbox::User=root source --download-only -qq inspircd && tar -xf inspircd_*.orig.tar.* -C /opt/inspircd-fmt/fmt --strip-components=3 --wildcards \"*/vendor/fmt/*.h\" && rm -rf /tmp/src"')
		fi
		mkdir -p "$work/control/debian"
		cp debian/control "$work/control/debian/"
		mmdebstrap --quiet --mode=root --variant=buildd \
			--customize-hook='mkdir -p "$1/tmp/pkg"' \
			--customize-hook="copy-in $work/control/debian /tmp/pkg" \
			--customize-hook='chroot "$1" apt-get build-dep -y -qq /tmp/pkg && rm -rf "$1/tmp/pkg"' \
			"${hooks[@]}" \
			--customize-hook='chroot "$1" apt-get clean' \
			"$suite" "$roots/build-$suite.tmp.tar" \
			"deb http://deb.debian.org/debian $suite main" \
			"deb http://deb.debian.org/debian-security $suite-security main" \
			"deb-src http://deb.debian.org/debian $suite main" || fail "mmdebstrap $suite build root"
		mv "$roots/build-$suite.tmp.tar" "$cache"
	fi
	build_root=$work/build-$suite
	rm -rf "$build_root"
	mkdir -p "$build_root"
	tar -xf "$cache" -C "$build_root"
	echo "build root $suite: $(chroot "$build_root" dpkg -S /usr/bin/cargo /usr/bin/rustc /usr/include/inspircd/inspircd.h | cut -d: -f1 | tr '\n' ' ')"
	chroot "$build_root" dpkg-query -W -f='  ${Package} ${Version}\n' "$(chroot "$build_root" dpkg -S /usr/bin/cargo | cut -d: -f1)" inspircd-dev
	[ ! -e "$build_root/root/.cargo" ] && ! chroot "$build_root" sh -c 'command -v rustup' >/dev/null ||
		fail "the $suite build root has rustup"
}

# build_deb NAME SUITE [VAR=VALUE...]: the package from the tarball in a clean build
# root of SUITE, offline, with the variables given in the environment (debian/rules
# reads them); the result in $work/NAME.
build_deb() {
	local name=$1 suite=$2
	shift 2
	build_root "$suite"
	mkdir -p "$build_root/build" "$work/$name"
	tar -xJf "$tarball" -C "$build_root/build"
	# A network namespace with no interface but a loopback that is down; /proc for
	# rustc, in a mount namespace of its own (gone with the build).
	unshare --net --mount --fork sh -c 'mount -t proc proc "$1/proc" && exec chroot "$@"' sh \
		"$build_root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@" \
		sh -c "cd /build/$base && echo \"network interfaces inside: \$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ' ')\" && dpkg-buildpackage -b -uc -us" \
		> "$work/$name/build.log" 2>&1 || { tail -n 40 "$work/$name/build.log"; fail "dpkg-buildpackage ($name, in the $suite root)"; }
	grep -E '^network interfaces inside|^Building for InspIRCd' "$work/$name/build.log"
	cp "$build_root"/build/inspircd-websocket_* "$work/$name/"
	rm -rf "$build_root"
	deb=$(ls "$work/$name"/inspircd-websocket_*.deb)
	echo "package: ${deb#$top/}"
	dpkg-deb -f "$deb" Package Version Depends
	dpkg-deb -c "$deb"
	echo "lintian:"
	# As root lintian says so on stderr ("running with root privileges is not
	# recommended!"); the findings go to stdout.
	lintian -I --pedantic "$work/$name"/inspircd-websocket_*.changes > "$work/$name/lintian.log" 2>"$work/$name/lintian.err" ||
		{ cat "$work/$name/lintian.log" "$work/$name/lintian.err"; fail "lintian ($name) exited non-zero"; }
	sed 's/^/  /' "$work/$name/lintian.log"
	if grep -qE '^[EW]: ' "$work/$name/lintian.log"; then
		fail "lintian errors or warnings ($name)"
	fi
	pass "lintian ($name): no errors or warnings ($(grep -c . "$work/$name/lintian.log" || true) findings in all)"
}

step "Debian 12 package, built in a clean Debian 12 root with Debian's Rust (InspIRCd 3.15)"
build_deb deb12 bookworm
deb12=$deb
dpkg-deb -f "$deb12" Depends | grep -q 'inspircd (>= 3.15.0), inspircd (<< 3.16~)' || fail "Debian 12 package: wrong InspIRCd dependency"
step_done

step "Debian 13 package, built in a clean Debian 13 root with Debian's Rust (InspIRCd 4.7)"
build_deb deb13 trixie INSPIRCD_FMT_DIR=/opt/inspircd-fmt
deb13=$deb
dpkg-deb -f "$deb13" Depends | grep -q 'inspircd (>= 4.7.0), inspircd (<< 4.8~)' || fail "Debian 13 package: wrong InspIRCd dependency"
step_done

# ---------------------------------------------------------------------------------
# root SUITE: a fresh copy of the cached clean root of SUITE with inspircd installed
# (and inspircd's .deb kept in /root for the upgrade check), in $work/root-SUITE.
make_root() {
	local suite=$1 cache=$roots/$1.tar
	if [ ! -s "$cache" ]; then
		echo "making the $suite root (mmdebstrap, cached as ${cache#$top/})"
		mmdebstrap --quiet --mode=root --variant=apt --include=inspircd \
			--customize-hook='chroot "$1" sh -c "cd /root && apt-get -o APT::Sandbox::User=root download -qq inspircd"' \
			"$suite" "$roots/$suite.tmp.tar" http://deb.debian.org/debian || fail "mmdebstrap $suite"
		mv "$roots/$suite.tmp.tar" "$cache"
	fi
	root=$work/root-$suite
	rm -rf "$root"
	mkdir -p "$root"
	tar -xf "$cache" -C "$root"
	# No service starts in the root (inspircd's postinst asks invoke-rc.d when its .deb
	# is reinstalled); the test starts the server itself.
	printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
	chmod +x "$root/usr/sbin/policy-rc.d"
}

md5_of() { md5sum "$1" | cut -d' ' -f1; }
# The md5 PACKAGE's md5sums list for the module.
listed_md5() { grep " ${module#/}\$" "$root/var/lib/dpkg/info/$1.md5sums" | cut -d' ' -f1; }

check_diverted() {
	chroot "$root" dpkg-divert --list "$module" | tee "$work/divert.txt"
	grep -q "^diversion of $module to $module.stock by inspircd-websocket\$" "$work/divert.txt" ||
		fail "no diversion of $module by inspircd-websocket"
	[ "$(md5_of "$root$module.stock")" = "$(listed_md5 inspircd)" ] ||
		fail "$module.stock is not inspircd's m_websocket.so"
	[ "$(md5_of "$root$module")" = "$(listed_md5 inspircd-websocket)" ] ||
		fail "$module is not the package's"
	[ "$(listed_md5 inspircd)" != "$(listed_md5 inspircd-websocket)" ] || fail "the stock and the package's module are the same file"
	pass "diverted: $module.stock is inspircd's, $module is inspircd-websocket's ($1)"
}

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts the root's InspIRCd with the websocket module on a free port, connects from the
# host, stops the server by its PID.
run_server() {
	local port dir=/srv/package-test
	port=$(free_port)
	mkdir -p "$root$dir"
	cat > "$root$dir/inspircd.conf" <<EOF
<path configdir="$dir" datadir="$dir" logdir="$dir" moduledir="/usr/lib/inspircd/modules" runtimedir="$dir">
<pid file="$dir/inspircd.pid">
<server name="package.test" description="make package-test" network="PackageTest">
<admin name="Admin" nick="admin" email="admin@package.test">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="debug" flush="1" target="$dir/ircd.log">
<bind address="127.0.0.1" port="$port" type="clients" hook="websocket">
<connect name="main" allow="*" resolvehostnames="no" useident="no" timeout="60" pingfreq="600">
<module name="websocket">
<websocket defaultmode="text">
<wsorigin allow="*">
EOF
	chroot "$root" /usr/sbin/inspircd --nofork --runasroot --config="$dir/inspircd.conf" \
		> "$work/server.log" 2>&1 &
	server_pid=$!
	local i
	for i in $(seq 1 150); do
		grep -q "InspIRCd is now running" "$work/server.log" && break
		kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; server_pid=; fail "InspIRCd exited at start"; }
		sleep 0.2
	done
	grep -q "InspIRCd is now running" "$work/server.log" || { cat "$work/server.log"; fail "InspIRCd did not start in 30 s"; }
	grep -m1 -E 'InspIRCd-[0-9]' "$work/server.log" || true
	echo "InspIRCd running in the root, PID $server_pid, WebSocket on 127.0.0.1:$port"
	python3 "$top/tools/package/ws_register.py" "$port" || { tail -n 20 "$root$dir/ircd.log"; fail "WebSocket registration"; }
	pass "WebSocket handshake, IRC registration (001) and close frame on QUIT through the packaged module"
	kill "$server_pid"
	wait "$server_pid" || true
	kill -0 "$server_pid" 2>/dev/null && fail "InspIRCd (PID $server_pid) did not stop"
	server_pid=
	pass "InspIRCd stopped by its PID"
	rm -rf "$root$dir"
}

# release_test SUITE DEB
release_test() {
	local suite=$1 deb=$2
	make_root "$suite"
	echo "root: $suite, inspircd $(chroot "$root" dpkg-query -W -f='${Version}' inspircd)"
	local stock_md5
	stock_md5=$(md5_of "$root$module")
	[ "$stock_md5" = "$(listed_md5 inspircd)" ] || fail "the root's $module is not inspircd's"

	cp "$deb" "$root/tmp/"
	chroot "$root" dpkg -i "/tmp/${deb##*/}" || fail "dpkg -i ${deb##*/}"
	pass "dpkg -i ${deb##*/}"
	check_diverted "after install"

	run_server

	chroot "$root" dpkg -i "/tmp/${deb##*/}" >/dev/null || fail "dpkg -i over itself"
	check_diverted "after installing it again over itself"
	chroot "$root" sh -c 'dpkg -i /root/inspircd_*.deb' >/dev/null || fail "reinstalling inspircd's .deb"
	check_diverted "after reinstalling inspircd's own .deb (an inspircd upgrade)"

	chroot "$root" dpkg --purge inspircd-websocket || fail "dpkg --purge inspircd-websocket"
	if chroot "$root" dpkg-divert --list "$module" | grep -q .; then
		fail "a diversion of $module remains after purge"
	fi
	[ ! -e "$root$module.stock" ] || fail "$module.stock remains after purge"
	[ "$(md5_of "$root$module")" = "$stock_md5" ] && [ "$stock_md5" = "$(listed_md5 inspircd)" ] ||
		fail "after purge $module is not the stock module"
	pass "purged: no diversion, $module is inspircd's again (md5 $stock_md5, as inspircd.md5sums lists)"
	rm -rf "$root"
}

step "Debian 12 root: install, run, reinstall, purge"
release_test bookworm "$deb12"
step_done

step "Debian 13 root: install, run, reinstall, purge"
release_test trixie "$deb13"
step_done

echo
echo "PASS: make package-test ($(($(date +%s) - t_start)) s in all)"
