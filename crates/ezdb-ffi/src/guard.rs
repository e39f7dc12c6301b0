// The one wrapper every exported function runs its body in: failures become a status plus the
// thread's last-error message, and a panic is caught before it can unwind into C or PHP.

use crate::last_error;
use crate::status::{ezdb_status, Failure};
use std::panic::{catch_unwind, AssertUnwindSafe};

pub(crate) fn guarded(body: impl FnOnce() -> Result<ezdb_status, Failure>) -> ezdb_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(status)) => status,
        Ok(Err(failure)) => {
            last_error::set(&failure.message);
            failure.status
        }
        Err(panic) => {
            let detail = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            last_error::set(&format!(
                "internal error in libezdb ({detail}); the call was abandoned (any transaction it had open is rolled back); please report it"
            ));
            ezdb_status::EZDB_PANIC
        }
    }
}

/// Runs `body` and answers `EZDB_OK` when it succeeds.
pub(crate) fn guarded_ok(body: impl FnOnce() -> Result<(), Failure>) -> ezdb_status {
    guarded(|| body().map(|()| ezdb_status::EZDB_OK))
}
