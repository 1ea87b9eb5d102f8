/*
 * m_websocket: the differences between the InspIRCd 3 and 4 APIs the shim uses, in one
 * place, so that cpp/m_websocket.cpp is one source for both. Only mechanical
 * differences live here (types, names, signatures); what the module does is the same.
 *
 * On InspIRCd 4 log and exception texts are {fmt} format strings when given as
 * `const char*`: everything here takes `std::string`, which is never formatted, since
 * texts may hold what a user or a configuration file wrote.
 */

#pragma once

#include "inspircd.h"
#include "iohook.h"

#if INSPIRCD_VERSION_SINCE(4, 0)
# define WSGATE_INSPIRCD4 1
# include "extension.h"
#else
# define WSGATE_INSPIRCD4 0
#endif

#if WSGATE_INSPIRCD4
/* IOHook::Ping's parameters: none up to 4.11, the socket on the 4.x branch after it.
 * build.rs finds which by compiling against the headers (buildscript/api_probe.rs).
 */
# if !defined(WSGATE_PING_TAKES_SOCKET)
#  error "WSGATE_PING_TAKES_SOCKET is set by build.rs from what iohook.h declares"
# elif WSGATE_PING_TAKES_SOCKET
#  define WSGATE_PING_PARAMS StreamSocket*
# else
#  define WSGATE_PING_PARAMS
# endif
#endif

namespace compat
{
#if WSGATE_INSPIRCD4
	/** How an IOHookMiddle names its provider. */
	typedef std::shared_ptr<IOHookProvider> ProviderRef;
	/** What OnStreamSocketRead/Write return. */
	typedef ssize_t IOResult;
	/** A configuration tag. */
	typedef std::shared_ptr<ConfigTag> Tag;
	/** What OnCleanup is told the extensible is. */
	typedef ExtensionType ExtensibleKind;
	const ExtensibleKind USER_EXTENSIBLE = ExtensionType::USER;
	/** What a module's cull returns. */
	typedef Cullable::Result CullResult;

	inline std::string Location(const Tag& tag) { return tag->source.str(); }
	inline const ConfigTag::Items& Items(const Tag& tag) { return tag->GetItems(); }
	inline void Log(const std::string& message) { ServerInstance->Logs.Normal(MODNAME, message); }
	inline void Debug(const std::string& message) { ServerInstance->Logs.Debug(MODNAME, message); }
	inline const std::string& Address(User* user) { return user->GetAddress(); }
	inline const std::string& RealMask(User* user) { return user->GetRealMask(); }
	inline void ChangeAddress(LocalUser* user, const irc::sockets::sockaddrs& sa) { user->ChangeRemoteAddress(sa); }
	inline ModuleException Exception(Module* mod, const std::string& message) { return ModuleException(mod, message); }

	/** A string extension item synced to the other servers of the network. */
	class SyncedString : public StringExtItem
	{
	 public:
		SyncedString(Module* mod, const std::string& name)
			: StringExtItem(mod, name, ExtensionType::USER, true)
		{
		}
		const std::string* Get(const Extensible* container) const { return StringExtItem::Get(container); }
		void Set(Extensible* container, const std::string& value) { StringExtItem::Set(container, value); }
	};

	template <typename Provider>
	ProviderRef Self(Provider* provider) { return provider->shared_from_this(); }
	inline IOHookProvider* Raw(const ProviderRef& provider) { return provider.get(); }

	/** How the module holds its provider. */
	template <typename Provider>
	using ProviderHandle = std::shared_ptr<Provider>;
	template <typename Provider>
	ProviderHandle<Provider> NewProvider(Module* mod) { return std::make_shared<Provider>(mod); }
#else
	typedef IOHookProvider* ProviderRef;
	typedef int IOResult;
	typedef ConfigTag* Tag;
	typedef ExtensionItem::ExtensibleType ExtensibleKind;
	const ExtensibleKind USER_EXTENSIBLE = ExtensionItem::EXT_USER;
	typedef ::CullResult CullResult;

	inline std::string Location(Tag tag) { return tag->getTagLocation(); }
	inline const ConfigItems& Items(Tag tag) { return tag->getItems(); }
	inline void Log(const std::string& message) { ServerInstance->Logs->Log(MODNAME, LOG_DEFAULT, message); }
	inline void Debug(const std::string& message) { ServerInstance->Logs->Log(MODNAME, LOG_DEBUG, message); }
	inline const std::string& Address(User* user) { return user->GetIPString(); }
	inline const std::string& RealMask(User* user) { return user->GetFullRealHost(); }
	inline void ChangeAddress(LocalUser* user, const irc::sockets::sockaddrs& sa) { user->SetClientIP(sa); }
	inline ModuleException Exception(Module* mod, const std::string& message) { return ModuleException(message, mod); }

	/** A string extension item synced to the other servers of the network (InspIRCd 3's
	 * StringExtItem is; LocalStringExt is not).
	 */
	class SyncedString : public StringExtItem
	{
	 public:
		SyncedString(Module* mod, const std::string& name)
			: StringExtItem(name, ExtensionItem::EXT_USER, mod)
		{
		}
		const std::string* Get(const Extensible* container) const { return get(container); }
		void Set(Extensible* container, const std::string& value) { set(container, value); }
	};

	template <typename Provider>
	ProviderRef Self(Provider* provider) { return provider; }
	template <typename Ref>
	IOHookProvider* Raw(const Ref& provider) { return &*provider; }

	template <typename Provider>
	using ProviderHandle = reference<Provider>;
	template <typename Provider>
	ProviderHandle<Provider> NewProvider(Module* mod) { return ProviderHandle<Provider>(new Provider(mod)); }
#endif

	inline UserManager& Users() { return ServerInstance->Users; }

#if WSGATE_INSPIRCD4
	/** `<performance clonesonconnect>` as the core reads it (core_user reads the tag,
	 * with this default).
	 */
	inline bool ClonesOnConnect() { return ServerInstance->Config->ConfValue("performance")->getBool("clonesonconnect", true); }
	/** Whether a `<connect>` class is only for users that have registered (the keys the
	 * core reads).
	 */
	inline bool RegisteredOnly(const ConnectClass& klass) { return klass.config->getBool("connected", klass.config->getBool("registered", false)); }
	/** A `<connect>` class's type as its number (allow 0, deny 1, named 2). */
	inline uint8_t ClassType(const ConnectClass& klass) { return klass.type; }
	static_assert(ConnectClass::ALLOW == 0 && ConnectClass::DENY == 1 && ConnectClass::NAMED == 2, "connect class types");
#else
	inline bool ClonesOnConnect() { return ServerInstance->Config->CCOnConnect; }
	inline bool RegisteredOnly(const ConnectClass& klass) { return klass.config->getBool("registered", false); }
	inline uint8_t ClassType(const ConnectClass& klass) { return klass.type; }
	static_assert(CC_ALLOW == 0 && CC_DENY == 1 && CC_NAMED == 2, "connect class types");
#endif

	/** The configuration's tags called `name`, in file order. */
	template <typename Visit>
	void ForEachTag(const std::string& name, Visit visit)
	{
#if WSGATE_INSPIRCD4
		for (const auto& [_, tag] : ServerInstance->Config->ConfTags(name))
			visit(tag);
#else
		ConfigTagList tags = ServerInstance->Config->ConfTags(name);
		for (ConfigIter i = tags.first; i != tags.second; ++i)
			visit(i->second);
#endif
	}
}
