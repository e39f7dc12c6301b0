// The message of the last failed call, kept per thread like errno, so a status code can stay
// a plain integer and the caller still learns what went wrong and what to do.

use std::cell::RefCell;
use std::ffi::{c_char, CString};

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

pub(crate) fn set(message: &str) {
    let message = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|last| *last.borrow_mut() = message);
}

/// The message of the last call that failed on this thread ("" when none has).
///
/// Owned by the library: valid until the next libezdb call on the same thread. Copy it if you
/// need it longer; never free it.
#[no_mangle]
pub extern "C" fn ezdb_last_error() -> *const c_char {
    LAST_ERROR.with(|last| last.borrow().as_ptr())
}
