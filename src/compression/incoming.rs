//! Inflaters for the client's compressed messages, pooled per thread: a connection
//! holds one only while a compressed message is arriving.

use std::cell::RefCell;

use super::zlib::{InflateStop, Inflater};

/// Spare inflaters kept per thread (about 7 KB each, plus a 32 KiB window once used);
/// more messages arriving at once allocate more, which go away at their end.
const POOL_SPARES: usize = 4;

thread_local! {
    static POOL: RefCell<Vec<Inflater>> = const { RefCell::new(Vec::new()) };
}

/// An inflater taken from the pool for one message, given back (reset) when dropped.
#[derive(Debug)]
pub struct PooledInflater {
    inflater: Option<Inflater>,
}

impl PooledInflater {
    /// A spare inflater, or a new one; `None` if zlib could not allocate one.
    pub fn take() -> Option<PooledInflater> {
        let spare = POOL.with(|pool| pool.borrow_mut().pop());
        let inflater = match spare {
            Some(inflater) => inflater,
            None => Inflater::new()?,
        };
        Some(PooledInflater {
            inflater: Some(inflater),
        })
    }

    /// Inflates a piece of the message; see [`Inflater::inflate`].
    pub fn inflate<E>(
        &mut self,
        input: &[u8],
        emit: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), InflateStop<E>> {
        match self.inflater.as_mut() {
            Some(inflater) => inflater.inflate(input, emit),
            None => Err(InflateStop::Corrupt),
        }
    }

    /// Ends the message; see [`Inflater::finish_message`].
    pub fn finish<E>(
        &mut self,
        emit: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), InflateStop<E>> {
        match self.inflater.as_mut() {
            Some(inflater) => inflater.finish_message(emit),
            None => Err(InflateStop::Corrupt),
        }
    }
}

impl Drop for PooledInflater {
    fn drop(&mut self) {
        if let Some(mut inflater) = self.inflater.take() {
            inflater.reset();
            // During thread teardown the pool may be gone: the inflater is then freed.
            let _ = POOL.try_with(|pool| {
                let mut pool = pool.borrow_mut();
                if pool.len() < POOL_SPARES {
                    pool.push(inflater);
                }
            });
        }
    }
}
