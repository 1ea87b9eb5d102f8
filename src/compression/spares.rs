//! What compressing connections share, so that none keeps it while idle: spare
//! inflaters for the clients' messages and one scratch buffer for the server's.
//!
//! One value per module, owned by it and handed to each connection (an `Rc`: InspIRCd
//! runs modules on one thread), never a thread-local: a Rust thread-local with a
//! destructor keeps the module's shared object mapped after UNLOADMODULE for the life
//! of the server.

use std::cell::RefCell;

use super::zlib::Inflater;

/// Spare inflaters kept (about 7 KB each, plus a 32 KiB window once used); more
/// messages arriving at once allocate more, which go away at their end.
const SPARE_INFLATERS: usize = 4;

/// Largest scratch buffer kept between messages (an IRC line's compressed size is far
/// below; a long message's buffer is freed after it).
const SCRATCH_KEPT: usize = 1024;

/// The shared buffers of one module's connections.
#[derive(Debug, Default)]
pub struct Spares {
    inflaters: RefCell<Vec<Inflater>>,
    scratch: RefCell<Vec<u8>>,
}

impl Spares {
    /// A spare inflater, or a new one; `None` if zlib could not allocate one.
    pub(super) fn take_inflater(&self) -> Option<Inflater> {
        let spare = self.inflaters.borrow_mut().pop();
        spare.or_else(Inflater::new)
    }

    /// Takes back an inflater whose message has ended (kept if spares are wanted).
    pub(super) fn give_back(&self, mut inflater: Inflater) {
        let mut inflaters = self.inflaters.borrow_mut();
        if inflaters.len() < SPARE_INFLATERS {
            inflater.reset();
            inflaters.push(inflater);
        }
    }

    /// Runs `f` with the scratch buffer, empty; afterwards it is emptied again, and
    /// freed when a long message made it grow.
    pub(super) fn with_scratch<T>(&self, f: impl FnOnce(&mut Vec<u8>) -> T) -> T {
        let mut scratch = self.scratch.borrow_mut();
        let result = f(&mut scratch);
        scratch.clear();
        if scratch.capacity() > SCRATCH_KEPT {
            *scratch = Vec::new();
        }
        result
    }

    /// Spare inflaters now (for tests).
    #[cfg(test)]
    pub(super) fn spare_inflaters(&self) -> usize {
        self.inflaters.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflaters_are_reused_and_spares_bounded() {
        let spares = Spares::default();
        let taken: Vec<Inflater> = (0..SPARE_INFLATERS + 2)
            .map(|_| spares.take_inflater().expect("an inflater"))
            .collect();
        for inflater in taken {
            spares.give_back(inflater);
        }
        assert_eq!(spares.spare_inflaters(), SPARE_INFLATERS);
        let _again = spares.take_inflater().expect("an inflater");
        assert_eq!(spares.spare_inflaters(), SPARE_INFLATERS - 1);
    }

    #[test]
    fn the_scratch_buffer_starts_empty_and_a_long_one_is_freed() {
        let spares = Spares::default();
        spares.with_scratch(|s| s.extend_from_slice(&[1; 100]));
        spares.with_scratch(|s| {
            assert!(s.is_empty());
            assert!(s.capacity() >= 100);
            s.extend_from_slice(&vec![2; SCRATCH_KEPT * 4]);
        });
        spares.with_scratch(|s| assert_eq!(s.capacity(), 0));
    }
}
