/*
 * m_websocket: WebSocket (RFC 6455) client connections for InspIRCd 3.
 *
 * Glue between InspIRCd and the Rust protocol core; see include/m_websocket.h.
 */

#include "m_websocket.h"
#include "modules/stats.h"
#include "modules/whois.h"

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
}

namespace wsgate
{

WebSocketHookProvider::WebSocketHookProvider(Module* mod)
	: IOHookProvider(mod, "websocket", IOHookProvider::IOH_UNKNOWN, true)
	, counters(new_counters())
{
}

void WebSocketHookProvider::OnAccept(StreamSocket* sock, irc::sockets::sockaddrs* client, irc::sockets::sockaddrs* server)
{
	if (!config)
	{
		// ReadConfig has not succeeded yet; there is nothing to accept with.
		sock->SetError("WebSocket: module not configured");
		return;
	}
	new WebSocketHook(this, sock, **config, *counters, client->addr());
}

void WebSocketHookProvider::OnConnect(StreamSocket* sock)
{
	// WebSocket is only offered on listeners (server side).
}

WebSocketHook::WebSocketHook(IOHookProvider* prov, StreamSocket* sock, const WsConfig& config, const WsCounters& counters, const std::string& peer)
	: IOHookMiddle(prov)
	, session(new_session(config, counters, Bytes(peer), sock->type == StreamSocket::SS_USER ? SocketKind::User : SocketKind::Server))
{
	sock->AddIOHook(this);
}

int WebSocketHook::Fail(StreamSocket* sock, const std::string& output, const std::string& reason)
{
	if (!output.empty())
		GetSendQ().push_back(output);
	ServerInstance->Logs->Log(MODNAME, LOG_DEFAULT, "Closing connection from %s: %s",
		sock->type == StreamSocket::SS_USER ? static_cast<UserIOHandler*>(sock)->user->GetFullRealHost().c_str() : "server link",
		reason.c_str());
	sock->DoWrite();
	sock->SetError(reason);
	return -1;
}

bool WebSocketHook::ApplyRealAddress(StreamSocket* sock, const std::string& address)
{
	if (sock->type != StreamSocket::SS_USER)
		return true;

	LocalUser* const user = static_cast<UserIOHandler*>(sock)->user;
	irc::sockets::sockaddrs realsa(user->client_sa);
	if (!irc::sockets::aptosa(address, user->client_sa.port(), realsa))
		return true;

	ServerInstance->Logs->Log(MODNAME, LOG_DEBUG, "Real address of %s from a trusted proxy: %s",
		user->GetIPString().c_str(), address.c_str());
	if (realsa != user->client_sa)
		user->SetClientIP(realsa);

	// A ban may match the real address.
	return !user->quitting;
}

int WebSocketHook::OnStreamSocketRead(StreamSocket* sock, std::string& destrecvq)
{
	std::string& recvq = GetRecvQ();
	if (recvq.empty())
		return 0;

	std::string output;
	rust::Slice<uint8_t> input(reinterpret_cast<uint8_t*>(&recvq[0]), recvq.size());
	const ReadResult result = session->read(input, NowMs(), destrecvq, output);
	recvq.erase(0, result.consumed);
	if (recvq.empty())
	{
		// Free the buffer rather than keep its capacity (the handshake's, or a burst's)
		// for the connection's life: idle connections then hold nothing here.
		std::string().swap(recvq);
	}

	if (result.action == ReadAction::Close)
		return Fail(sock, output, ToStd(result.reason));
	if (result.action == ReadAction::DeliverThenClose)
	{
		// InspIRCd runs the delivered lines (a QUIT keeps its message), then closes
		// the socket because of the error.
		Fail(sock, output, ToStd(result.reason));
		return 1;
	}

	if (!output.empty())
	{
		GetSendQ().push_back(output);
		SocketEngine::ChangeEventMask(sock, FD_ADD_TRIAL_WRITE);
	}

	if (result.upgraded)
	{
		ServerInstance->Logs->Log(MODNAME, LOG_DEBUG, "WebSocket upgrade on fd %d (subprotocol: %s)",
			sock->GetFd(), result.subprotocol.empty() ? "none" : ToStd(result.subprotocol).c_str());
		if (!result.real_ip.empty() && !ApplyRealAddress(sock, ToStd(result.real_ip)))
			return -1;
		// Lines the server queued during the handshake can go now.
		SocketEngine::ChangeEventMask(sock, FD_ADD_TRIAL_WRITE);
	}

	return result.action == ReadAction::Deliver ? 1 : 0;
}

int WebSocketHook::OnStreamSocketWrite(StreamSocket* sock, StreamSocket::SendQueue& uppersendq)
{
	StreamSocket::SendQueue& mysendq = GetSendQ();
	if (session->holds_output())
		return mysendq.empty() ? 0 : 1;

	std::string output;
	session->begin_write(uppersendq.bytes(), output);
	for (StreamSocket::SendQueue::const_iterator i = uppersendq.begin(); i != uppersendq.end(); ++i)
		session->write(Bytes(*i), output);
	uppersendq.clear();
	session->finish_write(output);

	if (!output.empty())
		mysendq.push_back(output);
	return 1;
}

void WebSocketHook::OnStreamSocketClose(StreamSocket* sock)
{
	// The session is freed with this hook; nothing else is held.
}

void WebSocketHook::RequestClose(bool goingaway, const std::string& reason)
{
	session->request_close(goingaway, Bytes(reason));
}

void WebSocketHook::Keepalive(LocalUser* user)
{
	std::string output;
	const rust::String reason = session->keepalive(NowMs(), output);
	if (!output.empty())
	{
		GetSendQ().push_back(output);
		user->eh.DoWrite();
	}
	if (!reason.empty())
	{
		ServerInstance->Logs->Log(MODNAME, LOG_DEFAULT, "Closing connection from %s: %s",
			user->GetFullRealHost().c_str(), ToStd(reason).c_str());
		ServerInstance->Users->QuitUser(user, ToStd(reason));
	}
}

Gateway WebSocketHook::GetGateway() const
{
	return session->gateway();
}

}

/** The STATS letter for the module's counters; no stock InspIRCd 3 module uses it. */
static const char STATS_LETTER = 'W';

/** Polls every WebSocket user's keepalive once a second; the core decides. */
class KeepaliveTimer : public Timer
{
	Module* const module;

 public:
	KeepaliveTimer(Module* mod)
		: Timer(1, true)
		, module(mod)
	{
	}

	bool Tick(time_t now) CXX11_OVERRIDE
	{
		const UserManager::LocalList& users = ServerInstance->Users->GetLocalUsers();
		for (UserManager::LocalList::const_iterator i = users.begin(); i != users.end(); )
		{
			// Quitting a user removes it from the list: step first.
			LocalUser* const user = *i++;
			if (user->quitting)
				continue;
			wsgate::WebSocketHook* const hook = static_cast<wsgate::WebSocketHook*>(user->eh.GetModHook(module));
			if (hook)
				hook->Keepalive(user);
		}
		return true;
	}
};

class ModuleWebSocket
	: public Module
	, public Stats::EventListener
	, public Whois::EventListener
{
	KeepaliveTimer keepalive;

	reference<wsgate::WebSocketHookProvider> hookprov;

	wsgate::WebSocketHook* HookOf(User* user)
	{
		LocalUser* const luser = IS_LOCAL(user);
		if (!luser)
			return NULL;
		return static_cast<wsgate::WebSocketHook*>(luser->eh.GetModHook(this));
	}

	static void AddTagItems(wsgate::ConfigBuilder& builder, ConfigTag* tag)
	{
		const ConfigItems& items = tag->getItems();
		for (ConfigItems::const_iterator i = items.begin(); i != items.end(); ++i)
			builder.add_item(Bytes(i->first), Bytes(i->second));
	}

 public:
	ModuleWebSocket()
		: Stats::EventListener(this)
		, Whois::EventListener(this)
		, keepalive(this)
		, hookprov(new wsgate::WebSocketHookProvider(this))
	{
	}

	void init() CXX11_OVERRIDE
	{
		ServerInstance->Timers.AddTimer(&keepalive);
	}

	void ReadConfig(ConfigStatus& status) CXX11_OVERRIDE
	{
		rust::Box<wsgate::ConfigBuilder> builder = wsgate::new_config_builder();

		ConfigTagList origins = ServerInstance->Config->ConfTags("wsorigin");
		for (ConfigIter i = origins.first; i != origins.second; ++i)
		{
			builder->begin_origin_tag(Bytes(i->second->getTagLocation()));
			AddTagItems(*builder, i->second);
		}

		ConfigTag* tag = ServerInstance->Config->ConfValue("websocket");
		builder->begin_websocket_tag(Bytes(tag->getTagLocation()));
		AddTagItems(*builder, tag);

		wsgate::SharedConfig config;
		try
		{
			config = std::make_shared<rust::Box<wsgate::WsConfig> >(builder->build());
		}
		catch (const rust::Error& error)
		{
			// The old configuration stays in force.
			throw ModuleException(error.what());
		}

		rust::Vec<rust::String> warnings = (*config)->warnings();
		for (rust::Vec<rust::String>::iterator i = warnings.begin(); i != warnings.end(); ++i)
			ServerInstance->Logs->Log(MODNAME, LOG_DEFAULT, "WARNING: %s", ToStd(*i).c_str());

		hookprov->config = config;
	}

	void OnUserQuit(User* user, const std::string& message, const std::string& oper_message) CXX11_OVERRIDE
	{
		wsgate::WebSocketHook* const hook = HookOf(user);
		if (hook)
			hook->RequestClose(false, message);
	}

	void OnUserDisconnect(LocalUser* user) CXX11_OVERRIDE
	{
		// Also reached by users quitting before registration (OnUserQuit is not).
		wsgate::WebSocketHook* const hook = HookOf(user);
		if (hook)
			hook->RequestClose(false, "");
	}

	void OnCleanup(ExtensionItem::ExtensibleType type, Extensible* item) CXX11_OVERRIDE
	{
		if (type != ExtensionItem::EXT_USER)
			return;

		User* const user = static_cast<User*>(item);
		wsgate::WebSocketHook* const hook = HookOf(user);
		if (!hook)
			return;

		static const std::string reason = "WebSocket module unloading";
		hook->RequestClose(true, reason);
		ServerInstance->Users->QuitUser(user, reason);
	}

	ModResult OnStats(Stats::Context& stats) CXX11_OVERRIDE
	{
		if (stats.GetSymbol() != STATS_LETTER)
			return MOD_RES_PASSTHRU;

		rust::Vec<rust::String> lines = hookprov->counters->report();
		for (rust::Vec<rust::String>::iterator i = lines.begin(); i != lines.end(); ++i)
			stats.AddRow(RPL_STATS, "WebSocket " + ToStd(*i));
		return MOD_RES_DENY;
	}

	void OnWhois(Whois::Context& whois) CXX11_OVERRIDE
	{
		if (!whois.GetSource()->HasPrivPermission("users/auspex"))
			return;

		wsgate::WebSocketHook* const hook = HookOf(whois.GetTarget());
		if (!hook)
			return;

		const wsgate::Gateway gateway = hook->GetGateway();
		if (gateway.upgraded)
			whois.SendLine(RPL_WHOISGATEWAY, ToStd(gateway.proxy_host), ToStd(gateway.proxy_ip), ToStd(gateway.text));
	}

	Version GetVersion() CXX11_OVERRIDE
	{
		return Version("Provides WebSocket (RFC 6455) client connections; a drop-in replacement for the stock websocket module with a Rust protocol core");
	}
};

MODULE_INIT(ModuleWebSocket)
