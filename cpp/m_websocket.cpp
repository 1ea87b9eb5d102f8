/*
 * m_websocket: WebSocket (RFC 6455) client connections for InspIRCd 3 and 4.
 *
 * Glue between InspIRCd and the Rust protocol core; see include/m_websocket.h. What
 * differs between the two InspIRCd versions is in include/compat.h.
 */

#include "m_websocket.h"
#include "modules/stats.h"
#include "modules/webirc.h"
#include "modules/whois.h"

#include <chrono>
#include <poll.h>
#include <vector>

namespace
{
	rust::Slice<const uint8_t> Bytes(const std::string& str)
	{
		return rust::Slice<const uint8_t>(reinterpret_cast<const uint8_t*>(str.data()), str.size());
	}

	/** InspIRCd's clock of the current event-loop iteration, in milliseconds. */
	uint64_t NowMs()
	{
		return static_cast<uint64_t>(ServerInstance->Time()) * 1000 + static_cast<uint64_t>(ServerInstance->Time_ns()) / 1000000;
	}

	std::string ToStd(const rust::String& str)
	{
		return std::string(str.data(), str.size());
	}

	std::string ToStd(rust::Str str)
	{
		return std::string(str.data(), str.size());
	}

	/** The 4 or 16 bytes of an IPv4 or IPv6 address; none for a UNIX socket. */
	rust::Slice<const uint8_t> AddressBytes(const irc::sockets::sockaddrs& sa)
	{
		if (sa.family() == AF_INET)
			return rust::Slice<const uint8_t>(reinterpret_cast<const uint8_t*>(&sa.in4.sin_addr), sizeof(sa.in4.sin_addr));
		if (sa.family() == AF_INET6)
			return rust::Slice<const uint8_t>(reinterpret_cast<const uint8_t*>(&sa.in6.sin6_addr), sizeof(sa.in6.sin6_addr));
		return rust::Slice<const uint8_t>();
	}

	/** `sa` with its address replaced by `address` (4 or 16 bytes), its port kept
	 * unless `port` is given.
	 */
	bool WithAddress(irc::sockets::sockaddrs& sa, const rust::Vec<uint8_t>& address, bool has_port, uint16_t newport)
	{
		const in_port_t port = htons(has_port ? newport : sa.port());
		sa = irc::sockets::sockaddrs();
		if (address.size() == sizeof(sa.in4.sin_addr))
		{
			sa.in4.sin_family = AF_INET;
			sa.in4.sin_port = port;
			memcpy(&sa.in4.sin_addr, address.data(), address.size());
			return true;
		}
		if (address.size() == sizeof(sa.in6.sin6_addr))
		{
			sa.in6.sin6_family = AF_INET6;
			sa.in6.sin6_port = port;
			memcpy(&sa.in6.sin6_addr, address.data(), address.size());
			return true;
		}
		return false;
	}
}

namespace wsgate
{

/** A socket the server has closed, kept open until the client's close frame arrives or
 * the linger timeout passes (src/linger.rs). It reads and drops what the client sends;
 * the session decides when the wait is over.
 */
class LingeringClose : public EventHandler
{
	WebSocketHookProvider* const provider;
	rust::Box<WsSession> session;

 public:
	LingeringClose(WebSocketHookProvider* prov, int fd, rust::Box<WsSession>& closing)
		: provider(prov)
		, session(std::move(closing))
	{
		SetFd(fd);
	}

	~LingeringClose()
	{
		if (HasFd())
			SocketEngine::Close(this);
	}

	/** Reads everything the client has sent. True once the wait is over: its close
	 * arrived, or it closed the connection, or the socket failed.
	 */
	bool ReadAvailable()
	{
		char* const buffer = &*ServerInstance->GetReadBuffer();
		const size_t size = ServerInstance->Config->NetBufferSize;
		for (;;)
		{
			const int n = SocketEngine::Recv(this, buffer, size, 0);
			if (n == 0)
				return true;
			if (n < 0)
				return !SocketEngine::IgnoreError();
			rust::Slice<uint8_t> input(reinterpret_cast<uint8_t*>(buffer), n);
			if (session->linger_read(input, NowMs()))
				return true;
		}
	}

	bool Expired()
	{
		return session->linger_expired(NowMs());
	}

	/** The wait is over: the session goes now (its counters with it), the object at the
	 * next timer run.
	 */
	void DropSession()
	{
		rust::Box<WsSession> done(std::move(session));
	}

	void OnEventHandlerRead() override
	{
		if (ReadAvailable())
			provider->EndLinger(this);
	}

	void OnEventHandlerWrite() override
	{
	}

	void OnEventHandlerError(int errornum) override
	{
		provider->EndLinger(this);
	}
};

WebSocketHookProvider::WebSocketHookProvider(Module* mod)
	: IOHookProvider(mod, "websocket", IOHookProvider::IOH_UNKNOWN, true)
	, module(new_module())
	, webircevprov(mod, "event/webirc")
	, sslapi(mod)
	, origin(mod, "websocket-origin")
	, realhost(mod, "websocket-realhost")
	, realip(mod, "websocket-realip")
{
}

#if WSGATE_INSPIRCD4
void WebSocketHookProvider::OnAccept(StreamSocket* sock, const irc::sockets::sockaddrs& client, const irc::sockets::sockaddrs& server)
#else
void WebSocketHookProvider::OnAccept(StreamSocket* sock, irc::sockets::sockaddrs* clientptr, irc::sockets::sockaddrs* server)
#endif
{
#if !WSGATE_INSPIRCD4
	const irc::sockets::sockaddrs& client = *clientptr;
#endif
	const SocketKind kind = sock->type == StreamSocket::SS_USER ? SocketKind::User : SocketKind::Server;
	try
	{
		new WebSocketHook(compat::Self(this), sock, module->new_session(AddressBytes(client), kind));
	}
	catch (const rust::Error& error)
	{
		// ReadConfig has not succeeded yet; there is nothing to accept with.
		sock->SetError(error.what());
	}
}

void WebSocketHookProvider::OnConnect(StreamSocket* sock)
{
	// WebSocket is only offered on listeners (server side).
}

bool WebSocketHookProvider::QueueOutput(StreamSocket::SendQueue& sendq)
{
	if (output.empty())
		return false;
	// Pieces of at most output_piece_bytes() bytes (src/ffi/output.rs says why).
	const size_t piece = output_piece_bytes();
	if (output.size() <= piece)
		sendq.push_back(output);
	else
	{
		for (size_t at = 0; at < output.size(); at += piece)
		{
			outputpiece.assign(output, at, piece);
			sendq.push_back(outputpiece);
		}
	}
	if (output.capacity() > output_keep_bytes())
		std::string().swap(output);
	return true;
}

void WebSocketHookProvider::Linger(StreamSocket* sock, rust::Box<WsSession>& session)
{
	const int fd = sock->GetFd();
	SocketEngine::DelFd(sock);
	sock->SetFd(-1);
	LingeringClose* const closing = new LingeringClose(this, fd, session);
	if (SocketEngine::AddFd(closing, FD_WANT_FAST_READ | FD_WANT_NO_WRITE))
		lingering.insert(closing);
	else
		delete closing;
}

void WebSocketHookProvider::EndLinger(LingeringClose* closing)
{
	lingering.erase(closing);
	SocketEngine::Close(closing);
	closing->DropSession();
	// Not deleted here: this may run inside its own read handler.
	ended.push_back(closing);
}

void WebSocketHookProvider::DeleteEnded()
{
	for (std::vector<LingeringClose*>::const_iterator i = ended.begin(); i != ended.end(); ++i)
		delete *i;
	ended.clear();
}

void WebSocketHookProvider::ExpireLingering()
{
	DeleteEnded();
	for (std::set<LingeringClose*>::iterator i = lingering.begin(); i != lingering.end(); )
	{
		// Ending one removes it from the set: step first.
		LingeringClose* const closing = *i++;
		if (closing->Expired())
			EndLinger(closing);
	}
}

void WebSocketHookProvider::FinishLingering()
{
	// The server's loop will not run again for these sockets (the module is going), so
	// wait here, for all of them at once, bounded by the core's unload limit.
	typedef std::chrono::steady_clock Clock;
	const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(unload_linger_ms());
	while (!lingering.empty())
	{
		const long long left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
		if (left <= 0)
			break;
		std::vector<pollfd> fds;
		std::vector<LingeringClose*> owners(lingering.begin(), lingering.end());
		for (std::vector<LingeringClose*>::const_iterator i = owners.begin(); i != owners.end(); ++i)
		{
			pollfd entry = { (*i)->GetFd(), POLLIN, 0 };
			fds.push_back(entry);
		}
		if (poll(fds.data(), fds.size(), static_cast<int>(left)) < 0 && errno != EINTR)
			break;
		for (size_t i = 0; i < fds.size(); ++i)
		{
			if (fds[i].revents && owners[i]->ReadAvailable())
			{
				lingering.erase(owners[i]);
				delete owners[i];
			}
		}
	}
	for (std::set<LingeringClose*>::const_iterator i = lingering.begin(); i != lingering.end(); ++i)
		delete *i;
	lingering.clear();
	DeleteEnded();
}

void WebSocketHookProvider::PollKeepalives(uint64_t now_ms)
{
	while (!keepalives.empty() && keepalives.begin()->first <= now_ms)
	{
		// Out of the schedule first: the poll enters it again at its next deadline.
		WebSocketHook* const hook = keepalives.begin()->second;
		hook->Unschedule();
		hook->Keepalive(now_ms);
	}
}

WebSocketHook::WebSocketHook(const compat::ProviderRef& prov, StreamSocket* sock, rust::Box<WsSession> newsession)
	: IOHookMiddle(prov)
	, session(std::move(newsession))
	, socket(sock)
{
	sock->AddIOHook(this);
}

WebSocketHook::~WebSocketHook()
{
	Unschedule();
}

void WebSocketHook::Schedule()
{
	Unschedule();
	const KeepaliveDeadline deadline = session->keepalive_deadline();
	if (!deadline.scheduled)
		return;
	keepalive_entry = Provider()->keepalives.emplace(deadline.at_ms, this);
	scheduled = true;
}

void WebSocketHook::Unschedule()
{
	if (!scheduled)
		return;
	Provider()->keepalives.erase(keepalive_entry);
	scheduled = false;
}

void WebSocketHook::LogClosing(StreamSocket* sock, const std::string& reason, bool quiet)
{
	const bool is_user = sock->type == StreamSocket::SS_USER;
	static const std::string none;
	const std::string& from = is_user ? compat::RealMask(static_cast<UserIOHandler*>(sock)->user) : none;
	const std::string line = ToStd(closing_log_line(Bytes(from), is_user, Bytes(reason)));
	if (quiet)
		compat::Debug(line);
	else
		compat::Log(line);
}

void WebSocketHook::Fail(StreamSocket* sock, const std::string& reason, bool quiet)
{
	LogClosing(sock, reason, quiet);
	sock->DoWrite();
	sock->SetError(reason);
}

void WebSocketHook::OnUpgrade(StreamSocket* sock, const UpgradeResult& upgrade)
{
	if (sock->type != StreamSocket::SS_USER)
		return;

	LocalUser* const user = static_cast<UserIOHandler*>(sock)->user;
	if (upgrade.has_origin)
		Provider()->origin.Set(user, ToStd(upgrade.origin));
}

void WebSocketHook::FireWebIRC(LocalUser* user, EventFlags flags)
{
	WebIRC::FlagMap map;
	if (flags == EventFlags::Secure)
		map["secure"] = "";
	const WebIRC::FlagMap* const given = flags == EventFlags::None ? NULL : &map;
	WebSocketHookProvider* const provider = Provider();
#if WSGATE_INSPIRCD4
	provider->webircevprov.Call(&WebIRC::EventListener::OnWebIRCAuth, user, given);
#else
	FOREACH_MOD_CUSTOM(provider->webircevprov, WebIRC::EventListener, OnWebIRCAuth, (user, given));
#endif
}

bool WebSocketHook::ApplyProxied(StreamSocket* sock, const ProxiedResult& proxied)
{
	if (sock->type != StreamSocket::SS_USER)
		return true;

	WebSocketHookProvider* const provider = Provider();
	LocalUser* const user = static_cast<UserIOHandler*>(sock)->user;
	if (proxied.set_certificate && provider->sslapi)
	{
		ssl_cert* const cert = new ssl_cert;
		cert->error = ToStd(certificate_note());
		cert->revoked = true;
		provider->sslapi->SetCertificate(user, cert);
	}
	irc::sockets::sockaddrs realsa(user->client_sa);
	if (!WithAddress(realsa, proxied.real_ip, proxied.has_port, proxied.real_port))
		return true;

	compat::Debug(ToStd(proxied.note));
	provider->realhost.Set(user, user->GetRealHost());
	provider->realip.Set(user, compat::Address(user));
	FireWebIRC(user, proxied.event_flags);
	compat::ChangeAddress(user, realsa);
	return !user->quitting;
}

compat::IOResult WebSocketHook::OnStreamSocketRead(StreamSocket* sock, std::string& destrecvq)
{
	std::string& recvq = GetRecvQ();
	if (recvq.empty())
		return 0;

	WebSocketHookProvider* const provider = Provider();
	rust::Slice<uint8_t> input(reinterpret_cast<uint8_t*>(&recvq[0]), recvq.size());
	const ReadResult result = session->receive(input, GetNextHook() != NULL, NowMs(), destrecvq, provider->output);
	recvq.erase(0, result.consumed);
	if (recvq.empty())
	{
		// Free the buffer rather than keep its capacity (the handshake's, or a burst's)
		// for the connection's life: idle connections then hold nothing here.
		std::string().swap(recvq);
	}
	const bool replied = provider->QueueOutput(GetSendQ());
#if WSGATE_INSPIRCD4
	// The server's ping timer wants to hear from the client between two of its pings:
	// any frame will do.
	if (result.heard && sock->type == StreamSocket::SS_USER)
		static_cast<UserIOHandler*>(sock)->user->lastping = 1;
#endif

	if (!result.warning.empty())
		compat::Log(ToStd(result.warning));
	if (result.upgrade.done)
		OnUpgrade(sock, result.upgrade);
	// Before the lines run (even those that came with a close), so that they run
	// with the user's real address. False: a ban on it closed the socket.
	if (result.proxied.done && !ApplyProxied(sock, result.proxied))
		return 0;
	if (result.forget_peer && sock->type == StreamSocket::SS_USER)
		FireWebIRC(static_cast<UserIOHandler*>(sock)->user, EventFlags::None);
	// The core says from now on when the keepalive is due.
	if (result.upgrade.done)
		Schedule();

	switch (result.action)
	{
		case ReadAction::Close:
			Fail(sock, ToStd(result.reason), result.quiet);
			return -1;
		case ReadAction::DeliverThenClose:
			// InspIRCd runs the delivered lines (a QUIT keeps its message), then closes
			// the socket because of the error.
			Fail(sock, ToStd(result.reason), result.quiet);
			return 1;
		default:
			break;
	}
	if (replied || result.write_now)
		SocketEngine::ChangeEventMask(sock, FD_ADD_TRIAL_WRITE);
	return result.action == ReadAction::Deliver ? 1 : 0;
}

compat::IOResult WebSocketHook::OnStreamSocketWrite(StreamSocket* sock, StreamSocket::SendQueue& uppersendq)
{
	StreamSocket::SendQueue& mysendq = GetSendQ();
	WebSocketHookProvider* const provider = Provider();
	const WriteAction action = session->send(uppersendq, NowMs(), provider->output);
	if (action == WriteAction::Hold)
	{
		// Before the upgrade the server's lines wait in their queue.
		return mysendq.empty() ? 0 : 1;
	}
	uppersendq.clear();
	provider->QueueOutput(mysendq);
	if (action == WriteAction::SentThenQuit)
		Schedule();
	return 1;
}

void WebSocketHook::OnStreamSocketClose(StreamSocket* sock)
{
	// StreamSocket::Close() has written what it could. If that includes the server's
	// close frame, the socket waits for the client's (src/linger.rs); a TLS hook below
	// this one means the client's bytes cannot be followed frame by frame. Either way
	// no keepalive is polled any more.
	Unschedule();
	if (session->begin_linger(GetNextHook() != NULL, GetSendQ().empty(), NowMs()))
		Provider()->Linger(sock, session);
}

#if WSGATE_INSPIRCD4
bool WebSocketHook::Ping(WSGATE_PING_PARAMS)
{
	WebSocketHookProvider* const provider = Provider();
	const bool pinged = session->server_ping(NowMs(), provider->output);
	// The deadline may have moved (a failure makes it due at once).
	Schedule();
	if (!pinged)
		return false;
	// Unlike the stock module's, written at once rather than with the next lines.
	provider->QueueOutput(GetSendQ());
	SocketEngine::ChangeEventMask(socket, FD_ADD_TRIAL_WRITE);
	return true;
}
#endif

void WebSocketHook::RequestClose(ServerClose why, const std::string& quitmessage)
{
	session->request_close(why, Bytes(quitmessage));
}

void WebSocketHook::Keepalive(uint64_t now_ms)
{
	// Only users' hooks are scheduled (the core's keepalive_deadline).
	LocalUser* const user = static_cast<UserIOHandler*>(socket)->user;
	if (user->quitting)
		return;
	const rust::String reason = session->poll_keepalive(now_ms, Provider()->output);
	if (Provider()->QueueOutput(GetSendQ()))
		user->eh.DoWrite();
	if (!reason.empty())
	{
		const std::string why = ToStd(reason);
		LogClosing(socket, why, false);
		compat::Users().QuitUser(user, why);
		return;
	}
	Schedule();
}

}

/** Every poll_period_seconds(): polls the keepalives that are due (only those: the
 * core says when each is) and the lingering sockets' timeouts.
 */
class KeepaliveTimer : public Timer
{
	wsgate::WebSocketHookProvider& hookprov;

 public:
	KeepaliveTimer(wsgate::WebSocketHookProvider& prov)
		: Timer(wsgate::poll_period_seconds(), true)
		, hookprov(prov)
	{
	}

#if WSGATE_INSPIRCD4
	bool Tick() override
#else
	bool Tick(time_t) override
#endif
	{
		hookprov.ExpireLingering();
		hookprov.PollKeepalives(NowMs());
		return true;
	}
};

class ModuleWebSocket
	: public Module
	, public Stats::EventListener
	, public Whois::EventListener
{
	compat::ProviderHandle<wsgate::WebSocketHookProvider> hookprov;

	KeepaliveTimer keepalive;

	wsgate::WebSocketHook* HookOf(User* user)
	{
		LocalUser* const luser = IS_LOCAL(user);
		if (!luser)
			return NULL;
		return static_cast<wsgate::WebSocketHook*>(luser->eh.GetModHook(this));
	}

	static void AddTagItems(wsgate::ConfigBuilder& builder, const compat::Tag& tag)
	{
		for (const auto& [key, value] : compat::Items(tag))
			builder.add_item(Bytes(key), Bytes(value));
	}

	/** What the core has read that decides whether bursts of users through a proxy meet
	 * its clone limits (src/proxy_clones.rs), as it is: the setting, every connect
	 * class in the order the core tries them, and the ports of the listeners whose hook
	 * is `hook`.
	 */
	static void AddServerFacts(wsgate::ConfigBuilder& builder, const std::string& hook)
	{
		builder.set_clones_on_connect(compat::ClonesOnConnect());
		for (const auto& klass : ServerInstance->Config->Classes)
		{
			// The bridge's kinds are numbered as InspIRCd's (compat.h checks that).
			const wsgate::ConnectClassKind kind = static_cast<wsgate::ConnectClassKind>(compat::ClassType(*klass));
			builder.add_connect_class(Bytes(klass->name), kind, compat::RegisteredOnly(*klass), klass->maxlocal, klass->maxglobal);
			for (const std::string& host : klass->GetHosts())
				builder.add_connect_class_host(Bytes(host));
			for (const auto port : klass->ports)
				builder.add_connect_class_port(static_cast<uint16_t>(port));
		}
		for (const ListenSocket* listener : ServerInstance->ports)
		{
			if (listener->bind_tag->getString("hook") == hook)
				builder.add_websocket_port(listener->bind_sa.port());
		}
	}

 public:
	ModuleWebSocket()
#if WSGATE_INSPIRCD4
		: Module(VF_NONE, ToStd(wsgate::module_description()))
		, Stats::EventListener(this)
#else
		: Stats::EventListener(this)
#endif
		, Whois::EventListener(this)
		, hookprov(compat::NewProvider<wsgate::WebSocketHookProvider>(this))
		, keepalive(*hookprov)
	{
	}

#if WSGATE_INSPIRCD4
	Cullable::Result Cull() override
#else
	CullResult cull() override
#endif
	{
		// Unloading: no socket may outlive the module's code.
		hookprov->FinishLingering();
#if WSGATE_INSPIRCD4
		return Module::Cull();
#else
		return Module::cull();
#endif
	}

	void init() override
	{
		ServerInstance->Timers.AddTimer(&keepalive);
	}

	void ReadConfig(ConfigStatus& status) override
	{
		rust::Box<wsgate::ConfigBuilder> builder = wsgate::new_config_builder();
		builder->set_server_version(WSGATE_INSPIRCD4 ? 4 : 3);
		compat::ForEachTag("wsorigin", [&builder](const compat::Tag& tag)
		{
			builder->begin_origin_tag(Bytes(compat::Location(tag)));
			AddTagItems(*builder, tag);
		});

		const compat::Tag tag = ServerInstance->Config->ConfValue("websocket");
		builder->begin_websocket_tag(Bytes(compat::Location(tag)));
		AddTagItems(*builder, tag);

		rust::Vec<rust::String> warnings;
		try
		{
			AddServerFacts(*builder, hookprov->name);
			warnings = hookprov->module->configure(*builder);
		}
		catch (const rust::Error& error)
		{
			// The old configuration stays in force.
			throw compat::Exception(this, error.what());
		}
		for (const rust::String& warning : warnings)
			compat::Log(ToStd(warning));
	}

	void OnUserQuit(User* user, const std::string& message, const std::string& oper_message) override
	{
		wsgate::WebSocketHook* const hook = HookOf(user);
		if (hook)
			hook->RequestClose(wsgate::ServerClose::Quit, message);
	}

	void OnUserDisconnect(LocalUser* user) override
	{
		// Also reached by users quitting before registration (OnUserQuit is not).
		wsgate::WebSocketHook* const hook = HookOf(user);
		if (hook)
			hook->RequestClose(wsgate::ServerClose::Quit, "");
	}

	void OnCleanup(compat::ExtensibleKind type, Extensible* item) override
	{
		if (type != compat::USER_EXTENSIBLE)
			return;

		User* const user = static_cast<User*>(item);
		wsgate::WebSocketHook* const hook = HookOf(user);
		if (!hook)
			return;

		hook->RequestClose(wsgate::ServerClose::Unload, "");
		compat::Users().QuitUser(user, ToStd(wsgate::unload_quit_message()));
	}

	ModResult OnStats(Stats::Context& stats) override
	{
		if (stats.GetSymbol() != static_cast<char>(wsgate::stats_letter()))
			return MOD_RES_PASSTHRU;

		for (const rust::String& line : hookprov->module->stats())
			stats.AddRow(RPL_STATS, ToStd(line));
		return MOD_RES_DENY;
	}

	void OnWhois(Whois::Context& whois) override
	{
		if (!whois.GetSource()->HasPrivPermission("users/auspex"))
			return;

		User* const target = whois.GetTarget();
		const std::string* const origin = hookprov->origin.Get(target);
		const std::string* const realhost = hookprov->realhost.Get(target);
		const std::string* const realip = hookprov->realip.Get(target);
		static const std::string none;
		const wsgate::WhoisGateway line = wsgate::whois_gateway(
			Bytes(origin ? *origin : none), origin != NULL,
			Bytes(realhost ? *realhost : none), realhost != NULL,
			Bytes(realip ? *realip : none), realip != NULL,
			HookOf(target) != NULL);
		if (line.show)
			whois.SendLine(RPL_WHOISGATEWAY, ToStd(line.host), ToStd(line.ip), ToStd(line.text));
	}

#if !WSGATE_INSPIRCD4
	Version GetVersion() override
	{
		return Version(ToStd(wsgate::module_description()));
	}
#endif
};

MODULE_INIT(ModuleWebSocket)
