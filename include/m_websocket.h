/*
 * m_websocket: WebSocket (RFC 6455) client connections for InspIRCd 3 and 4.
 *
 * The C++ side is glue: it reads configuration tags as raw strings, moves bytes between
 * InspIRCd's queues and a Rust session (src/ffi/), and acts on what the session
 * reports (set the real IP, close, log). It never parses.
 */

#pragma once

#include "compat.h"
#include "modules/ssl.h"

#include "rust/cxx.h"
#include "inspircd-websocket/src/ffi/mod.rs.h"

#include <map>
#include <set>
#include <vector>

namespace wsgate
{
	class LingeringClose;
	class WebSocketHook;

	/** The hooks whose keepalive the timer must poll, by the time it is due (the core's
	 * KeepaliveDeadline).
	 */
	typedef std::multimap<uint64_t, WebSocketHook*> KeepaliveSchedule;

	/** The "websocket" hook provider: creates one WebSocketHook per accepted socket, and
	 * holds what the hooks share.
	 */
	class WebSocketHookProvider : public IOHookProvider
	{
	 public:
		/** The configuration in force and the counters (the Rust core's). */
		rust::Box<WsModule> module;

		/** What the core writes for a client, in every call that writes (one buffer for
		 * the module: InspIRCd runs on one thread); copied into the socket's queue at once.
		 */
		std::string output;

		/** One piece of a long output on its way into a send queue (QueueOutput). */
		std::string outputpiece;

		/** Copies what the last call wrote into `sendq`; false if it wrote nothing. */
		bool QueueOutput(StreamSocket::SendQueue& sendq);

		/** Fired, as the cgiirc module does for WebIRC gateways, before a trusted proxy's
		 * real address is applied: connectban then lowers the proxy's count, so that the
		 * proxy is not Z-lined for its users' connections.
		 */
		Events::ModuleEventProvider webircevprov;

		/** sslinfo's API, through which a secure web user behind a plain loopback proxy
		 * is given its certificate (src/secure.rs).
		 */
		UserCertificateAPI sslapi;

		/** What other modules and linked servers see about WebSocket users: the synced
		 * extension items of InspIRCd 4's stock module (WHOIS numeric 350 reads them).
		 */
		compat::SyncedString origin;
		compat::SyncedString realhost;
		compat::SyncedString realip;

		/** Sockets closed by the server that wait for the client's close frame. */
		std::set<LingeringClose*> lingering;

		/** Lingering sockets whose wait is over, closed, deleted at the next timer run
		 * (rather than through InspIRCd's cull list, which logs a line for each).
		 */
		std::vector<LingeringClose*> ended;

		/** The hooks to poll for keepalive, by deadline. */
		KeepaliveSchedule keepalives;

		WebSocketHookProvider(Module* mod);
#if WSGATE_INSPIRCD4
		void OnAccept(StreamSocket* sock, const irc::sockets::sockaddrs& client, const irc::sockets::sockaddrs& server) override;
#else
		void OnAccept(StreamSocket* sock, irc::sockets::sockaddrs* client, irc::sockets::sockaddrs* server) override;
#endif
		void OnConnect(StreamSocket* sock) override;

		/** Takes over a closing socket's file descriptor, so that StreamSocket::Close()
		 * neither shuts it down nor closes it, and waits for the client's close frame.
		 */
		void Linger(StreamSocket* sock, rust::Box<WsSession>& session);

		/** A lingering socket is done: closes it. */
		void EndLinger(LingeringClose* closing);

		/** Deletes the lingering sockets that have ended. */
		void DeleteEnded();

		/** Closes the lingering sockets whose timeout has passed. */
		void ExpireLingering();

		/** On unload: waits a bounded time for the remaining close replies, then closes
		 * every lingering socket, so that none outlives the module's code.
		 */
		void FinishLingering();

		/** Polls the keepalive of every hook whose deadline is `now_ms` or earlier. */
		void PollKeepalives(uint64_t now_ms);
	};

	/** One WebSocket connection: an IOHookMiddle around a Rust session. */
	class WebSocketHook : public IOHookMiddle
	{
		rust::Box<WsSession> session;

		/** The hooked socket (Ping() schedules a write on it; the keepalive poll finds
		 * its user).
		 */
		StreamSocket* const socket;

		/** This hook's entry in the provider's keepalive schedule, when `scheduled`. */
		KeepaliveSchedule::iterator keepalive_entry;
		bool scheduled = false;

		WebSocketHookProvider* Provider() const
		{
			return static_cast<WebSocketHookProvider*>(compat::Raw(prov));
		}

		/** Logs the core's closing line for the socket (at debug level if `quiet`). */
		static void LogClosing(StreamSocket* sock, const std::string& reason, bool quiet);

		/** Logs the reason (at debug level if `quiet`), writes what is queued, then fails
		 * the socket with it.
		 */
		void Fail(StreamSocket* sock, const std::string& reason, bool quiet);

		/** Records what the upgrade established (the origin). */
		void OnUpgrade(StreamSocket* sock, const UpgradeResult& upgrade);

		/** Fires InspIRCd's WebIRC event for the user with the flag map the core chose,
		 * as the cgiirc/gateway module does before it changes a user's address.
		 */
		void FireWebIRC(LocalUser* user, EventFlags flags);

		/** Applies what a trusted proxy established: a certificate, then the WebIRC
		 * event and the real address. False if the user is now quitting (a ban may match
		 * the real address): the socket has been closed and this hook deleted.
		 */
		bool ApplyProxied(StreamSocket* sock, const ProxiedResult& proxied);

	 public:
		WebSocketHook(const compat::ProviderRef& prov, StreamSocket* sock, rust::Box<WsSession> newsession);

		compat::IOResult OnStreamSocketRead(StreamSocket* sock, std::string& destrecvq) override;
		compat::IOResult OnStreamSocketWrite(StreamSocket* sock, StreamSocket::SendQueue& uppersendq) override;
		void OnStreamSocketClose(StreamSocket* sock) override;

#if WSGATE_INSPIRCD4
		/** InspIRCd 4's ping timer (every `<connect pingfreq>`): a ping frame, written at
		 * once, instead of an IRC PING (`nativeping`).
		 */
		bool Ping(WSGATE_PING_PARAMS) override;
#endif

		/** Queues a close frame after the lines already queued (QUIT, unload). */
		void RequestClose(ServerClose why, const std::string& quitmessage);

		~WebSocketHook();

		/** (Re)enters this hook in the keepalive schedule at the core's deadline, or
		 * takes it out when the core has none.
		 */
		void Schedule();

		/** Takes this hook out of the keepalive schedule. */
		void Unschedule();

		/** Sends a keepalive ping when the client is idle; quits a user who did not
		 * answer one. Called when the deadline has come, out of the schedule.
		 */
		void Keepalive(uint64_t now_ms);
	};
}
