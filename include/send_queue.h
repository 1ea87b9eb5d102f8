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

	inline size_t queue_length(const SendQueue& queue)
	{
		return queue.size();
	}

	inline size_t queue_bytes(const SendQueue& queue)
	{
		return queue.bytes();
	}

	inline rust::Slice<const uint8_t> queue_element(const SendQueue& queue, size_t index)
	{
		const SendQueue::Element& element = *(queue.begin() + index);
		return rust::Slice<const uint8_t>(reinterpret_cast<const uint8_t*>(element.data()), element.size());
	}
}
