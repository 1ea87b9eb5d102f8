#!/bin/sh
# make dist: the versioned source tarball, target/dist/inspircd-websocket-VERSION.tar.xz,
# that builds the module with no network access (docs/DEVELOPING.md "The source
# tarball").
#
# What goes in: what the module's build reads (Cargo.toml, Cargo.lock, build.rs,
# buildscript/, src/, cpp/, include/, the Makefile), intree/ (the build inside InspIRCd's
# source tree), its documentation (README.md, docs/, modules.conf.example),
# debian/, and vendor/ (`cargo vendor`, every crate's .cargo-checksum.json kept) with a
# .cargo/config.toml that replaces crates.io by vendor/ and turns cargo offline.
#
# What stays out: tests/, benches/, examples/, conformance/, fuzz/ (its corpora are most
# of the repository's files), tools/, example/, .ci/, target/ and .git. The workspace
# members listed in Cargo.toml (tools/testkit, tools/loadbench, tools/soak) must exist
# for cargo to read the manifest, and vendoring them would bring the test and benchmark
# crates (tungstenite, rustls and ring, criterion, proptest, ...) for a build that never
# compiles them. So the tarball gets a trimmed manifest instead: the same package, the
# same dependencies and build dependencies and the same profiles, with the workspace
# reduced to the package itself and without [dev-dependencies] and [[bench]]. The
# [workspace] table stays so that cargo does not look for a workspace above the
# unpacked directory. `cargo vendor` then prunes Cargo.lock to that graph; the script
# checks that every package left is the one the repository's Cargo.lock pins (same
# version, same checksum).
#
# Usage: tools/package/dist.sh [OUTDIR]     (default: target/dist)
#        tools/package/dist.sh --stage DIR  the same files unpacked in DIR/NAME-VERSION,
#                                           no tarball (make intree, the in-tree test)
# Needs: cargo with network access to crates.io (or its registry cache), python3, xz.
set -eu
stage_only=
if [ "${1:-}" = --stage ]; then
	stage_only=1
	shift
	[ $# = 1 ] || { echo "usage: $0 --stage DIR" >&2; exit 2; }
fi
cd "$(dirname "$0")/../.."
top=$(pwd)
outdir=${1:-target/dist}
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
cargo=${CARGO:-cargo}

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
name=inspircd-websocket
base=$name-$version
stage=$outdir/stage
rm -rf "$stage"
mkdir -p "$stage/$base"
dir=$stage/$base

# The files git knows or would add (no build output, nothing ignored), as they are in
# the work tree.
git ls-files -z --cached --others --exclude-standard -- Cargo.lock build.rs buildscript Makefile README.md docs modules.conf.example src cpp include intree debian |
	xargs -0 cp --parents -t "$dir"

# The trimmed manifest (see above).
awk '
	BEGIN { print "# The source tarball'\''s manifest (tools/package/dist.sh): the repository'\''s Cargo.toml"
		print "# without the test kit, the tools, [dev-dependencies] and [[bench]], which the"
		print "# tarball leaves out; the module'\''s package, dependencies and profiles are unchanged." }
	/^\[/ { skip = ($0 == "[dev-dependencies]" || $0 == "[[bench]]") }
	skip { next }
	/^members = / { print "members = [\".\"]"; next }
	/^exclude = / { next }
	{ print }
' Cargo.toml > "$dir/Cargo.toml"

mkdir -p "$dir/.cargo"
(cd "$dir" && "$cargo" vendor vendor > "$stage/vendor-config.toml" 2>"$stage/vendor.log" || { cat "$stage/vendor.log" >&2; exit 1; })
{
	echo "# Written by tools/package/dist.sh: build from vendor/ (cargo vendor, checksums kept),"
	echo "# never from the network."
	cat "$stage/vendor-config.toml"
	printf '\n[net]\noffline = true\n'
} > "$dir/.cargo/config.toml"

python3 - "$top/Cargo.lock" "$dir/Cargo.lock" <<'EOF'
import sys, tomllib
def packages(path):
    with open(path, "rb") as f:
        return {(p["name"], p["version"]): p.get("checksum") for p in tomllib.load(f)["package"]}
repo, dist = packages(sys.argv[1]), packages(sys.argv[2])
bad = [k for k, v in dist.items() if repo.get(k, "absent") != v]
if bad:
    sys.exit(f"dist Cargo.lock differs from the repository's for {bad}")
print(f"Cargo.lock: {len(dist)} of the repository's {len(repo)} packages, same versions and checksums")
EOF

# debian/copyright names each vendored crate that is not MIT or Apache-2.0 (at the
# user's choice); a new crate under other terms must be added there.
for crate in "$dir"/vendor/*; do
	license=$(sed -n 's/^license = "\(.*\)"$/\1/p' "$crate/Cargo.toml")
	case $license in
	"MIT OR Apache-2.0" | "Apache-2.0 OR MIT" | "MIT/Apache-2.0") ;;
	*) grep -q "vendor/${crate##*/}/\*" debian/copyright || {
		echo "dist: vendor/${crate##*/} is under \"$license\", which debian/copyright does not list" >&2
		exit 1
	} ;;
	esac
done

if [ -n "$stage_only" ]; then
	rm -rf "${outdir:?}/$base"
	mv "$dir" "$outdir/$base"
	rm -rf "$stage"
	echo "${outdir#$top/}/$base: the tarball's files, $(ls "$outdir/$base/vendor" | wc -l) vendored crates"
	exit 0
fi

# Reproducible: sorted names, the last commit's time, no owner names.
mtime=$(git log -1 --format=%ct 2>/dev/null || date +%s)
tarball=$outdir/$base.tar.xz
tar --sort=name --mtime="@$mtime" --owner=0 --group=0 --numeric-owner --format=gnu \
	-C "$stage" -cf - "$base" | xz -T0 -9 > "$tarball.tmp"
mv "$tarball.tmp" "$tarball"
crates=$(ls "$dir/vendor" | wc -l)
rm -rf "$stage"
echo "${tarball#$top/}: $(du -k "$tarball" | cut -f1) KiB, $crates vendored crates"
