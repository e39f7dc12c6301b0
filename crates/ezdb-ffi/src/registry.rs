// The addresses of live handles and locks: a pointer is used only while it is registered, so a
// closed, freed or forged handle gives EZDB_INVALID_ARGUMENT instead of undefined behaviour.

use crate::status::Failure;
use parking_lot::Mutex;
use std::collections::BTreeSet;

pub(crate) struct Registry {
    kind: &'static str,
    live: Mutex<BTreeSet<usize>>,
}

impl Registry {
    pub(crate) const fn new(kind: &'static str) -> Registry {
        Registry {
            kind,
            live: Mutex::new(BTreeSet::new()),
        }
    }

    /// Hands `value` to the caller as a raw pointer it owns until [`Registry::take`].
    pub(crate) fn give<T>(&self, value: T) -> *mut T {
        let ptr = Box::into_raw(Box::new(value));
        self.live.lock().insert(ptr as usize);
        ptr
    }

    /// Borrows a registered pointer.
    pub(crate) unsafe fn get<'a, T>(&self, ptr: *const T) -> Result<&'a T, Failure> {
        self.check(ptr)?;
        Ok(&*ptr)
    }

    /// Borrows a registered pointer mutably (the caller serialises access, see handle.rs).
    pub(crate) unsafe fn get_mut<'a, T>(&self, ptr: *mut T) -> Result<&'a mut T, Failure> {
        self.check(ptr)?;
        Ok(&mut *ptr)
    }

    /// Takes ownership back; the pointer is invalid afterwards.
    pub(crate) unsafe fn take<T>(&self, ptr: *mut T) -> Result<Box<T>, Failure> {
        self.check(ptr)?;
        self.live.lock().remove(&(ptr as usize));
        Ok(Box::from_raw(ptr))
    }

    fn check<T>(&self, ptr: *const T) -> Result<(), Failure> {
        if ptr.is_null() {
            return Err(Failure::invalid(format!("the {} is NULL", self.kind)));
        }
        if !self.live.lock().contains(&(ptr as usize)) {
            return Err(Failure::invalid(format!(
                "the {} is not live: it was already freed, or did not come from libezdb",
                self.kind
            )));
        }
        Ok(())
    }
}
