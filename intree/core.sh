#!/bin/sh
# Run by InspIRCd's make through the $LinkerFlags directive of src/modules/m_websocket.cpp
# (intree/m_websocket.cpp), in InspIRCd's build directory: builds the module's core for
# this tree with the module's own Makefile (`make staticlib INSPIRCD_SOURCE=tree`: cargo,
# build.rs, the C++ shim against the tree's headers), then prints the flags that link
# it, and nothing else, on stdout. Everything the build says goes to stderr, which
# InspIRCd shows with INSPIRCD_VERBOSE=1.
#
# CARGO_TARGET_DIR: where cargo builds (default: inspircd-websocket/ in InspIRCd's
# build directory, so that `make clean` there leaves it and a rebuild is quick).
# CARGO: the cargo to run (default: cargo on PATH).
set -eu
project=$(cd "$(dirname "$0")/.." && pwd)
tree=${SOURCEPATH:?run by InspIRCd make, which sets SOURCEPATH}
target_dir=${CARGO_TARGET_DIR:-${BUILDPATH:?run by InspIRCd make, which sets BUILDPATH}/inspircd-websocket}
# InspIRCd's make flags and jobserver are not for this make.
unset MAKEFLAGS MFLAGS MAKELEVEL
# Everything it writes goes there too (SOURCE_BUILD: the staticlib for this tree).
set -- INSPIRCD_SOURCE="$tree" CARGO_TARGET_DIR="$target_dir" SOURCE_BUILD="$target_dir/module"
make -C "$project" --no-print-directory staticlib "$@" >&2
make -C "$project" --no-print-directory -s link-flags "$@"
