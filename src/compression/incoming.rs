//! Inflaters for the client's compressed messages, from the module's [`Spares`]: a
//! connection holds one only while a compressed message is arriving.

use std::rc::Rc;

use super::spares::Spares;
use super::zlib::{InflateStop, Inflater};

/// An inflater taken from the spares for one message, given back when dropped.
#[derive(Debug)]
pub struct PooledInflater {
    inflater: Option<Inflater>,
    spares: Rc<Spares>,
}

impl PooledInflater {
    /// A spare inflater, or a new one; `None` if zlib could not allocate one.
    pub fn take(spares: &Rc<Spares>) -> Option<PooledInflater> {
        Some(PooledInflater {
            inflater: Some(spares.take_inflater()?),
            spares: Rc::clone(spares),
        })
    }

    /// Inflates a piece of the message; see [`Inflater::inflate`].
    pub fn inflate<E>(
        &mut self,
        input: &[u8],
        emit: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), InflateStop<E>> {
        self.inflater().inflate(input, emit)
    }

    /// Ends the message; see [`Inflater::finish_message`].
    pub fn finish<E>(
        &mut self,
        emit: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), InflateStop<E>> {
        self.inflater().finish_message(emit)
    }

    fn inflater(&mut self) -> &mut Inflater {
        match self.inflater.as_mut() {
            Some(inflater) => inflater,
            None => unreachable!("the inflater is taken only when the message is dropped"),
        }
    }
}

impl Drop for PooledInflater {
    fn drop(&mut self) {
        if let Some(inflater) = self.inflater.take() {
            self.spares.give_back(inflater);
        }
    }
}
