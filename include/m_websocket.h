/*
 * m_websocket: WebSocket (RFC 6455) client connections for InspIRCd 3.
 *
 * The C++ side is glue: it reads configuration tags as raw strings, moves bytes between
 * InspIRCd's queues and a Rust session (src/ffi.rs), and acts on what the session
 * reports (set the real IP, close, log). It never parses.
 */

#pragma once

#include "inspircd.h"
#include "iohook.h"

#include "rust/cxx.h"
#include "inspircd-websocket/src/ffi.rs.h"

#include <memory>

namespace wsgate
{
	/** The validated configuration in force; replaced whole on a successful rehash. */
	typedef std::shared_ptr<rust::Box<WsConfig> > SharedConfig;

	/** The "websocket" hook provider: creates one WebSocketHook per accepted socket. */
	class WebSocketHookProvider : public IOHookProvider
	{
	 public:
		SharedConfig config;
		rust::Box<WsCounters> counters;

		WebSocketHookProvider(Module* mod);
		void OnAccept(StreamSocket* sock, irc::sockets::sockaddrs* client, irc::sockets::sockaddrs* server) CXX11_OVERRIDE;
		void OnConnect(StreamSocket* sock) CXX11_OVERRIDE;
	};

	/** One WebSocket connection: an IOHookMiddle around a Rust session. */
	class WebSocketHook : public IOHookMiddle
	{
		rust::Box<WsSession> session;

		/** Sends what the session produced, then closes the socket with a reason. */
		int Fail(StreamSocket* sock, const std::string& output, const std::string& reason);

		/** Applies a real address reported by a trusted proxy. False if the user is now quitting. */
		bool ApplyRealAddress(StreamSocket* sock, const std::string& address);

	 public:
		WebSocketHook(IOHookProvider* prov, StreamSocket* sock, const WsConfig& config, const WsCounters& counters, const std::string& peer);

		int OnStreamSocketRead(StreamSocket* sock, std::string& destrecvq) CXX11_OVERRIDE;
		int OnStreamSocketWrite(StreamSocket* sock, StreamSocket::SendQueue& uppersendq) CXX11_OVERRIDE;
		void OnStreamSocketClose(StreamSocket* sock) CXX11_OVERRIDE;

		/** Queues a close frame after the lines already queued (QUIT, unload). */
		void RequestClose(bool goingaway, const std::string& reason);

		/** Sends a keepalive ping when the client is idle; quits a user who did not answer one. */
		void Keepalive(LocalUser* user);

		/** What WHOIS shows opers about this connection. */
		Gateway GetGateway() const;
	};
}
