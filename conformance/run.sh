#!/usr/bin/env bash
# Runs the Autobahn|Testsuite fuzzing client against examples/autobahn_echo.rs (an echo
# server on the session core) and checks the report against conformance/expected.json.
#
#   conformance/run.sh [--all|--ci]
#
#   Both run groups 1-7, 9, 10, 12 and 13 (517 cases; 12-13 are permessage-deflate,
#   which the echo server accepts whenever a client offers it). --ci is the name CI and
#   make test use; it was once a subset, and is kept so that both names work.
#
# Wall times on the 2-core machine, Autobahn already installed (2026-12-01): groups 1-7,
# 9 and 10 about 20 s; groups 12-13 about 15 minutes, nearly all of it Autobahn's own
# Python compressing and checking 1000 messages of up to 128 KiB per case (the echo
# server used under half a core), hence the 45-minute bound on wstest below. The first
# run also installs Autobahn (~45 s).
#
# Autobahn is Python 2 code: it runs on pyenv's 2.7.18 ($AUTOBAHN_PYTHON overrides),
# installed once with pip from PyPI into $AUTOBAHN_PREFIX (default target/autobahn)
# and loaded with site.addsitedir, so nothing is installed system-wide. Results go to
# target/conformance/<mode>/ (report/index.html is Autobahn's own report).
set -euo pipefail

mode=all
case "${1:---all}" in
    --all | --ci) mode=all ;;
    *) echo "usage: $0 [--all|--ci]" >&2; exit 2 ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
target_dir=${CARGO_TARGET_DIR:-$root/target}
case "$target_dir" in /*) ;; *) target_dir=$root/$target_dir ;; esac
out=$target_dir/conformance/$mode
prefix=${AUTOBAHN_PREFIX:-$target_dir/autobahn}
autobahn_version=25.10.1

# --- Python 2.7.18 and Autobahn -------------------------------------------------------
export PYENV_VERSION=2.7.18
python=${AUTOBAHN_PYTHON:-}
if [ -z "$python" ] && command -v pyenv >/dev/null; then
    python=$(pyenv root)/versions/2.7.18/bin/python
fi
if [ -z "$python" ] && [ -x "${PYENV_ROOT:-$HOME/.pyenv}/versions/2.7.18/bin/python" ]; then
    python=${PYENV_ROOT:-$HOME/.pyenv}/versions/2.7.18/bin/python
fi
if [ -z "$python" ] || [ ! -x "$python" ]; then
    echo "Autobahn|Testsuite needs Python 2.7.18 (pyenv install 2.7.18, or set AUTOBAHN_PYTHON)" >&2
    exit 1
fi
site_packages=$prefix/lib/python2.7/site-packages
marker=$prefix/.installed-autobahntestsuite-$autobahn_version
if [ ! -e "$marker" ]; then
    echo "Installing autobahntestsuite==$autobahn_version into $prefix"
    rm -rf "$prefix"
    # setuptools 44 is the last for Python 2 and wheel 0.37 the last that installs on
    # it; they go in first so that building the sdists (wsaccel, autobahn, ...) uses
    # them rather than whatever pip's build isolation would fetch.
    "$python" -m pip install --quiet --disable-pip-version-check --prefix "$prefix" \
        --ignore-installed 'setuptools==44.0.0' 'wheel<0.38'
    PYTHONPATH=$site_packages "$python" -m pip install --quiet --disable-pip-version-check \
        --prefix "$prefix" --no-build-isolation "autobahntestsuite==$autobahn_version"
    touch "$marker"
fi

# --- The echo server -----------------------------------------------------------------
(cd "$root" && cargo build --quiet --release --example autobahn_echo)
rm -rf "$out"
mkdir -p "$out"
server_pid=
stop_server() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
}
trap stop_server EXIT
# Port 0: the server binds a free port and prints it.
"$target_dir/release/examples/autobahn_echo" 0 >"$out/server.out" 2>"$out/server.log" &
server_pid=$!
port=
for _ in $(seq 100); do
    port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$out/server.out")
    [ -n "$port" ] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$out/server.log" >&2; exit 1; }
    sleep 0.1
done
[ -n "$port" ] || { echo "the echo server did not start" >&2; exit 1; }
echo "Echo server on 127.0.0.1:$port (pid $server_pid)"

# --- The fuzzing client --------------------------------------------------------------
sed "s/@PORT@/$port/" "$here/fuzzingclient-$mode.json" >"$out/fuzzingclient.json"
echo "Running Autobahn|Testsuite $autobahn_version (--$mode), log in $out/wstest.log"
start=$(date +%s)
(
    cd "$out"
    timeout 2700 "$python" -c '
import site, sys
site.addsitedir(sys.argv[1])
sys.argv = ["wstest", "--mode", "fuzzingclient", "--spec", "fuzzingclient.json"]
from autobahntestsuite.wstest import run
sys.exit(run())
' "$site_packages" >wstest.log 2>&1
) || { tail -20 "$out/wstest.log" >&2; echo "wstest failed" >&2; exit 1; }
echo "Autobahn ran in $(($(date +%s) - start)) s"
stop_server
server_pid=

python3 "$here/check.py" --expected "$here/expected.json" --spec "$out/fuzzingclient.json" \
    "$out/report/index.json"
