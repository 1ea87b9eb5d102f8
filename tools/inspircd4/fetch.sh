#!/bin/sh
# Debian 13's InspIRCd 4 on this (Debian 12) host, without touching the host's apt
# sources: trixie's `inspircd` and `inspircd-dev` unpacked into DIR/root (mmdebstrap
# --variant=extract: no chroot, no maintainer scripts), the {fmt} headers the v4
# headers include taken from the same Debian source package (vendor/fmt), and
# DIR/inspircd, a wrapper that runs trixie's server with trixie's own loader and
# libraries. Debian 13's libc6-dbg comes too: valgrind (make stress, loadbench
# --callgrind) refuses to run a program through a loader whose symbols it cannot find.
# Idempotent: a DIR finished by this version of the script is left as it is.
#
# Usage: tools/inspircd4/fetch.sh [DIR]      (default: target/inspircd4)
# Needs: mmdebstrap (apt-get install mmdebstrap), network access to deb.debian.org.
set -eu
dir=${1:-target/inspircd4}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
suite=trixie
mirror=http://deb.debian.org/debian

libdir="$dir/root/usr/lib/x86_64-linux-gnu"

if [ -e "$dir/ready" ] && [ "$dir/ready" -nt "$0" ]; then
	exit 0
fi
command -v mmdebstrap >/dev/null || {
	echo "tools/inspircd4/fetch.sh needs mmdebstrap: apt-get install mmdebstrap" >&2
	exit 1
}

rm -rf "$dir/root" "$dir/fmt" "$dir/apt"
echo "Unpacking Debian $suite's inspircd, inspircd-dev and libc6-dbg into $dir/root"
mmdebstrap --quiet --variant=extract --include=inspircd,inspircd-dev,libc6-dbg "$suite" "$dir/root" "$mirror"

# valgrind looks for a library's detached symbols under the name its .gnu_debuglink
# gives (the build ID's tail) in a .debug directory beside it.
mkdir -p "$libdir/.debug"
for debug in "$dir"/root/usr/lib/debug/.build-id/*/*.debug; do
	ln -sf "$debug" "$libdir/.debug/${debug##*/}"
done

# The source package, through a private apt state (the host's sources stay as they are).
apt="$dir/apt"
mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$apt/src"
echo "deb-src $mirror $suite main" > "$apt/sources.list"
set -- -o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent \
	-o "Dir::State::Lists=$apt/lists" -o "Dir::Cache::Archives=$apt/archives"
apt-get "$@" -qq update
# The package version, as config.h names it ("InspIRCd-4.7.0-debian@4.7.0+ds1-2").
version=$(sed -n 's/^#define INSPIRCD_VERSION ".*@\(.*\)"$/\1/p' "$dir/root/usr/include/inspircd/config.h")
(cd "$apt/src" && apt-get "$@" -qq source --download-only "inspircd=$version" 2>/dev/null)
orig=$(ls "$apt/src"/inspircd_*.orig.tar.* | head -n 1)
mkdir -p "$dir/fmt/fmt"
tar -xf "$orig" -C "$dir/fmt/fmt" --strip-components=3 --wildcards '*/vendor/fmt/*.h'
rm -rf "$apt"

cat > "$dir/inspircd" <<WRAPPER
#!/bin/sh
# Debian $suite's InspIRCd $version, run with its own loader and libraries.
exec "$libdir/ld-linux-x86-64.so.2" --library-path "$libdir" "$dir/root/usr/sbin/inspircd" "\$@"
WRAPPER
chmod +x "$dir/inspircd"
echo "$version" > "$dir/ready"
echo "InspIRCd $version: headers $dir/root/usr/include/inspircd, fmt $dir/fmt, server $dir/inspircd"
