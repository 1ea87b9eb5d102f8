#!/bin/sh
# InspIRCd built from a source tarball or tree, kept in a cache outside the clone so
# that a second run builds nothing: INSPIRCD_SOURCE_CACHE, by default
# ${XDG_CACHE_HOME:-$HOME/.cache}/inspircd-websocket/ID, where ID is the tarball's
# sha256 or, for a tree, the sha256 of its files (build output aside).
#
#   source.sh tree SOURCE     the tree to build the module from: SOURCE itself if it is
#                             a directory, else the tarball unpacked into the cache
#   source.sh server SOURCE [MODULE...]
#                             InspIRCd built from SOURCE and installed into the cache:
#                             the server, its core modules and MODULE... (default: the
#                             stock modules the integration suite loads); prints the
#                             install prefix (bin/inspircd, modules/). A tree is copied
#                             into the cache first (never written to).
#   source.sh core SOURCE     the same with the server and its core modules only (what
#                             the smoke test needs)
#   source.sh cache SOURCE    the cache directory of SOURCE
#
# The build is InspIRCd's own: ./configure --enable-extras=ssl_gnutls (the extras
# wanted), ./configure --prefix=... --disable-auto-extras --disable-ownership, `make install` with
# INSPIRCD_TARGET naming only what is wanted (InspIRCd's way to build some targets), with
# InspIRCd's default compiler flags. More modules asked for later are built into the same
# tree (make builds only those). ssl_gnutls needs libgnutls28-dev and pkg-config.
# Concurrent runs for one SOURCE wait for each other (flock).
set -eu

# The stock modules tests/it and the test kit load (<module name=...>, Conf::module,
# Dialect::tls_listener/link): sha1 (the stock websocket module needs it), the stock
# websocket module, ssl_gnutls (TLS tests), spanningtree (linked servers), sslinfo
# (tls.rs, proxy_protocol.rs, proxy_recipes.rs), sslmodes (the proxy tests' +z),
# connectban, md5 and cloaking (deployment.rs; InspIRCd 4 loads cloak and cloak_md5 for
# <module name="cloaking">).
SUITE_MODULES="m_sha1 m_websocket m_ssl_gnutls m_spanningtree m_sslinfo m_sslmodes m_connectban m_md5 m_cloak m_cloak_md5"

usage() {
	echo "usage: $0 tree|server|core|cache SOURCE [MODULE...]" >&2
	exit 2
}
die() {
	echo "tools/inspircd-source/source.sh: $*" >&2
	exit 1
}

[ $# -ge 2 ] || usage
command=$1
source=$2
shift 2
[ -e "$source" ] || die "$source does not exist (INSPIRCD_SOURCE: an InspIRCd source tarball or tree)"
source=$(cd "$(dirname "$source")" && echo "$(pwd)/$(basename "$source")")
cache_root=${INSPIRCD_SOURCE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/inspircd-websocket}

# What a tree holds, build output aside: the files' names and contents.
tree_id() {
	(cd "$1" && find . \( -path ./build -o -path ./run -o -path ./.configure -o -path ./.git \) -prune \
		-o -type f ! -path ./GNUmakefile ! -path ./include/config.h -print0 |
		LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-32)
}

if [ -d "$source" ]; then
	[ -f "$source/src/version.sh" ] || die "$source is not an InspIRCd source tree (no src/version.sh)"
	id=tree-$(tree_id "$source")
else
	id=$(sha256sum "$source" | cut -c1-32)
fi
cache=$cache_root/$id
mkdir -p "$cache"

# The tree in the cache (unpacked or copied once); prints its path.
cached_tree() {
	if [ ! -s "$cache/tree.name" ]; then
		rm -rf "$cache/tree"
		mkdir -p "$cache/tree"
		if [ -d "$source" ]; then
			name=$(basename "$source")
			mkdir -p "$cache/tree/$name"
			tar -C "$source" --exclude=./build --exclude=./run --exclude=./.configure --exclude=./.git \
				--exclude=./GNUmakefile --exclude=./include/config.h -cf - . | tar -C "$cache/tree/$name" -xf -
		else
			tar -xf "$source" -C "$cache/tree" || die "cannot unpack $source"
			name=$(ls "$cache/tree")
			[ "$(echo "$name" | wc -l)" = 1 ] && [ -f "$cache/tree/$name/src/version.sh" ] ||
				die "$source does not unpack into one InspIRCd source tree"
		fi
		echo "$name" > "$cache/tree.name"
	fi
	echo "$cache/tree/$(cat "$cache/tree.name")"
}

exec 9>"$cache/lock"
flock 9

case $command in
tree)
	if [ -d "$source" ]; then echo "$source"; else cached_tree; fi
	;;
cache)
	echo "$cache"
	;;
server | core)
	tree=$(cached_tree)
	prefix=$cache/prefix
	if [ "$command" = server ] && [ $# = 0 ]; then
		# shellcheck disable=SC2086
		set -- $SUITE_MODULES
	fi
	# Only modules the tree has (an extra counts once enabled below).
	wanted="inspircd coremods"
	for module in "$@"; do
		if [ -e "$tree/src/modules/$module.cpp" ] || [ -d "$tree/src/modules/$module" ] ||
			[ -e "$tree/src/modules/extra/$module.cpp" ]; then
			wanted="$wanted $module"
		else
			echo "note: $(basename "$tree") has no module $module" >&2
		fi
	done
	built=$(cat "$cache/server.built" 2>/dev/null || true)
	missing=
	for target in $wanted; do
		case " $built " in *" $target "*) ;; *) missing="$missing $target" ;; esac
	done
	if [ -n "$missing" ] || [ ! -x "$prefix/bin/inspircd" ]; then
		log=$cache/server-build.log
		start=$(date +%s)
		echo "Building InspIRCd from $source in $tree:$missing (log: $log)" >&2
		(
			cd "$tree"
			for module in $missing; do
				if [ -e "src/modules/extra/$module.cpp" ] && [ ! -e "src/modules/$module.cpp" ]; then
					./configure --enable-extras="${module#m_}"
				fi
			done
			if [ ! -e "$cache/configured" ]; then
				./configure --prefix="$prefix" --disable-auto-extras --disable-ownership
				touch "$cache/configured"
			fi
			# shellcheck disable=SC2086
			INSPIRCD_TARGET="$(echo $built $missing)" make -j"$(nproc)" install
		) > "$log" 2>&1 || { tail -n 40 "$log" >&2; die "building InspIRCd from $source failed (log: $log)"; }
		echo "$built$missing" | tr ' ' '\n' | grep . | sort -u | tr '\n' ' ' > "$cache/server.built"
		echo "Built $(sh "$tree/src/version.sh") ($(cat "$cache/server.built")) in $(($(date +%s) - start)) s into $prefix" >&2
	fi
	echo "$prefix"
	;;
*)
	usage
	;;
esac
