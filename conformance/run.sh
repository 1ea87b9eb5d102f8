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
# Nearly all the time goes to groups 12-13: Autobahn's own Python compressing and
# checking 1000 messages of up to 128 KiB per case (conformance/README.md), hence the
# 45-minute bound on wstest below and the shards. The first run also installs Autobahn.
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

# --- The fuzzing clients -------------------------------------------------------------
# Autobahn's client is one Python process (one core); the cases run in shards, each its
# own process and report, at the same time: the permessage-deflate groups take nearly
# all the time, so group 12 is one shard and the rest the other (each about half).
shards=("12.*" "")
echo "Running Autobahn|Testsuite $autobahn_version (--$mode, ${#shards[@]} shards), logs in $out/shard-*/wstest.log"
start=$(date +%s)
client_pids=()
reports=()
for i in "${!shards[@]}"; do
    dir=$out/shard-$i
    mkdir -p "$dir"
    python3 - "$here/fuzzingclient-$mode.json" "$port" "${shards[$i]}" "${shards[*]}" >"$dir/fuzzingclient.json" <<'PY'
import json, sys
spec_path, port, mine, every = sys.argv[1:5]
spec = json.load(open(spec_path))
spec["servers"][0]["url"] = spec["servers"][0]["url"].replace("@PORT@", port)
shard_patterns = [p for p in every.split(" ") if p]
if mine:
    spec["cases"] = [mine]
else:
    # The rest: every pattern of the spec that no other shard takes.
    spec["cases"] = [c for c in spec["cases"] if c not in shard_patterns]
print(json.dumps(spec, indent=2))
PY
    (
        cd "$dir"
        exec timeout 2700 "$python" -c '
import site, sys
site.addsitedir(sys.argv[1])
sys.argv = ["wstest", "--mode", "fuzzingclient", "--spec", "fuzzingclient.json"]
from autobahntestsuite.wstest import run
sys.exit(run())
' "$site_packages" >wstest.log 2>&1
    ) &
    client_pids+=($!)
    reports+=("$dir/report/index.json")
done
failed=0
for i in "${!client_pids[@]}"; do
    if ! wait "${client_pids[$i]}"; then
        tail -20 "$out/shard-$i/wstest.log" >&2
        echo "wstest (shard $i: ${shards[$i]:-the rest}) failed" >&2
        failed=1
    fi
done
[ "$failed" = 0 ] || exit 1
echo "Autobahn ran in $(($(date +%s) - start)) s"
stop_server
server_pid=

sed "s/@PORT@/$port/" "$here/fuzzingclient-$mode.json" >"$out/fuzzingclient.json"
python3 "$here/check.py" --expected "$here/expected.json" --spec "$out/fuzzingclient.json" \
    "${reports[@]}"
