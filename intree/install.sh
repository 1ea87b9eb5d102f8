#!/bin/sh
# Puts this module into an InspIRCd source tree in place of its stock websocket module,
# for InspIRCd's own ./configure and make install to build and install:
#
#   TREE/src/modules/inspircd-websocket/  this source (the tarball's files, vendor/ too)
#   TREE/src/modules/m_websocket.cpp      intree/m_websocket.cpp (build directives only);
#                                         the stock file is kept as m_websocket.cpp.stock
#
# Run it from the unpacked source tarball (make dist; `make intree` does both). Again
# after an update: the module is rebuilt by the next make install.
#
# Usage: intree/install.sh TREE          put the module in (or update it)
#        intree/install.sh --remove TREE  take it out, the stock module back
set -eu
remove=
if [ "${1:-}" = --remove ]; then
	remove=1
	shift
fi
[ $# = 1 ] || { echo "usage: $0 [--remove] /path/to/inspircd" >&2; exit 2; }
tree=$1
project=$(cd "$(dirname "$0")/.." && pwd)
modules=$tree/src/modules
[ -f "$tree/src/version.sh" ] && [ -d "$modules" ] || { echo "$tree is not an InspIRCd source tree" >&2; exit 1; }
dest=$modules/inspircd-websocket

if [ -n "$remove" ]; then
	rm -rf "$dest"
	if [ -e "$modules/m_websocket.cpp.stock" ]; then
		mv "$modules/m_websocket.cpp.stock" "$modules/m_websocket.cpp"
	fi
	echo "inspircd-websocket removed from $tree; src/modules/m_websocket.cpp is the stock module again"
	exit 0
fi

[ -d "$project/vendor" ] || {
	echo "$project has no vendor/: run this from the source tarball (make dist), or run make intree INSPIRCD_SOURCE=$tree in the repository" >&2
	exit 1
}
# Keep the stock module once (not this file from an earlier run).
if [ -e "$modules/m_websocket.cpp" ] && ! grep -q 'intree/core.sh' "$modules/m_websocket.cpp"; then
	mv "$modules/m_websocket.cpp" "$modules/m_websocket.cpp.stock"
fi
rm -rf "$dest"
mkdir -p "$dest"
# As in the tarball (modification times kept: cargo rebuilds only what changed), without
# what a build here may have left.
tar -C "$project" --exclude=./target --exclude=./m_websocket.so -cf - . | tar -C "$dest" -xf -
cp "$project/intree/m_websocket.cpp" "$modules/m_websocket.cpp"
echo "inspircd-websocket is in $tree (src/modules/inspircd-websocket, src/modules/m_websocket.cpp); the stock module is src/modules/m_websocket.cpp.stock"
echo "Now, in $tree: ./configure (as usual), then make install (cargo must be on PATH)"
