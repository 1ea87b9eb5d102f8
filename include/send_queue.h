/*
 * m_websocket: InspIRCd's per-socket send queue as the Rust core reads it (src/ffi).
 *
 * Inline and free of the rest of the shim, so that the Rust tests link without
 * InspIRCd.
 */

#pragma once

#include "inspircd.h"
#include "rust/cxx.h"

namespace wsgate
{
	typedef StreamSocket::SendQueue SendQueue;

	inline size_t queue_bytes(const SendQueue& queue)
	{
		return queue.bytes();
	}

	/** Views (data and size) of the elements from `start` on, as many as `views` holds;
	 * how many were written. One call per batch, and the views are plain pointers
	 * rather than rust::Slice values, whose construction is a call of its own. A template
	 * because the bridge defines QueueView after including this header.
	 */
	template <typename QueueView>
	size_t queue_views(const SendQueue& queue, size_t start, rust::Slice<QueueView> views)
	{
		QueueView* const first = views.data();
		const size_t room = views.size();
		size_t n = 0;
		for (SendQueue::const_iterator i = queue.begin() + start; i != queue.end() && n < room; ++i, ++n)
		{
			first[n].data = reinterpret_cast<const uint8_t*>(i->data());
			first[n].len = i->size();
		}
		return n;
	}
}
