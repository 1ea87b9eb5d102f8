/*
 * m_websocket inside InspIRCd's own build: intree/install.sh puts this file in place of
 * the stock src/modules/m_websocket.cpp and this module's source beside it, in
 * src/modules/inspircd-websocket/. InspIRCd's make compiles this file (it has no code)
 * and links it with the module's core into modules/m_websocket.so; the link flags come
 * from the directive below, whose command builds the core first: cargo builds the Rust
 * core and the C++ shim against this tree's headers (as `make INSPIRCD_SOURCE=tree`
 * does), and only the three symbols InspIRCd looks up are exported (cpp/exports.map).
 *
 * make rebuilds the module when this file changes: intree/install.sh rewrites it.
 * If the module's build fails, `INSPIRCD_VERBOSE=1 make` shows why (cargo needs to be
 * on PATH; the source tarball of `make dist` carries every crate, so no network is used).
 */

/// $PackageInfo: require_system("debian~") cargo g++
/// $LinkerFlags: execute("sh $SOURCEPATH/src/modules/inspircd-websocket/intree/core.sh")
