#!/bin/sh
# Starts a real InspIRCd in the foreground with the freshly built m_websocket.so and
# the example configuration (used by `make run`), and serves example/ (the chat page
# example/chat.html) on http://127.0.0.1:PAGE_PORT/ while it runs.
# Usage: example/run.sh IRC_PORT WS_PORT PAGE_PORT
# Environment (set by `make run INSPIRCD=4` for Debian 13's InspIRCd 4):
#   INSPIRCD_BINARY  the server (default /usr/sbin/inspircd, Debian 12's InspIRCd 3)
#   STOCK_MODULES    its stock modules (default /usr/lib/inspircd/modules)
#   WS_MODULE        the module to run (default m_websocket.so at the top of the tree)
set -eu
irc_port=${1:-6667}
ws_port=${2:-8080}
page_port=${3:-8000}
top=$(cd "$(dirname "$0")/.." && pwd)
inspircd=${INSPIRCD_BINARY:-/usr/sbin/inspircd}
stock_modules=${STOCK_MODULES:-/usr/lib/inspircd/modules}
module=${WS_MODULE:-$top/m_websocket.so}
state=$(mktemp -d /tmp/m_websocket-run.XXXXXX)
modules="$state/modules"
mkdir -p "$modules"

# A private module directory: the stock modules, with our m_websocket.so instead of the stock one.
for m in "$stock_modules"/*.so; do
	[ "$(basename "$m")" = m_websocket.so ] || ln -s "$m" "$modules/"
done
ln -s "$module" "$modules/m_websocket.so"

sed -e "s|@MODULEDIR@|$modules|g" -e "s|@STATEDIR@|$state|g" -e "s|@CONFDIR@|$state|g" \
    -e "s|@IRC_PORT@|$irc_port|g" -e "s|@WS_PORT@|$ws_port|g" -e "s|@PAGE_PORT@|$page_port|g" \
    "$top/example/inspircd.conf.in" > "$state/inspircd.conf"

# The chat page: a static file server on the page port (an allowed origin), stopped
# by its PID when this script ends.
page_url="http://127.0.0.1:$page_port/chat.html"
[ "$ws_port" = 8080 ] || page_url="$page_url?server=ws://127.0.0.1:$ws_port/"
http_pid=""
if command -v python3 >/dev/null 2>&1; then
	python3 -m http.server --bind 127.0.0.1 --directory "$top/example" "$page_port" \
		>"$state/http.log" 2>&1 &
	http_pid=$!
	trap 'kill "$http_pid" 2>/dev/null || :; wait "$http_pid" 2>/dev/null || :' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	page_line="Chat page:  $page_url"
else
	page_line="Chat page:  not served (python3 not found); open $top/example/chat.html?server=ws://127.0.0.1:$ws_port/ as a file (origin null)"
fi

cat <<MSG

  InspIRCd with this project's websocket module is starting (Ctrl-C stops it).
    $page_line
    WebSocket:  ws://127.0.0.1:$ws_port/   (subprotocols text.ircv3.net, binary.ircv3.net;
                a browser's Origin must be http://127.0.0.1:$page_port, http://localhost:$page_port
                or null; clients that send none are let in)
    Plain IRC:  127.0.0.1 port $irc_port
    Oper:       /OPER admin admin
    Log:        $state/ircd.log
  Try it from a shell (Debian's python3-websockets), then type IRC lines:
    python3 -m websockets ws://127.0.0.1:$ws_port/
    > NICK guest
    > USER guest 0 * :Guest

MSG
if [ -n "$http_pid" ]; then
	# Not exec: this shell stays to stop the page server when InspIRCd exits.
	"$inspircd" --nofork --runasroot --config="$state/inspircd.conf"
else
	exec "$inspircd" --nofork --runasroot --config="$state/inspircd.conf"
fi
