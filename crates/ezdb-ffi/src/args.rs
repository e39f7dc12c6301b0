// Reading the caller's arguments: pointer + length strings and bytes, out-pointers, and
// NUL-separated lists. Every check names the argument, so the message says what to fix.

use crate::status::Failure;
use std::ffi::c_char;

/// Bytes the caller passed as `ptr` + `len`; NULL is allowed only with length 0.
pub(crate) unsafe fn bytes<'a>(ptr: *const c_char, len: usize, what: &str) -> Result<&'a [u8], Failure> {
    if ptr.is_null() {
        return match len {
            0 => Ok(&[]),
            _ => Err(Failure::invalid(format!("{what} is NULL but its length is {len}"))),
        };
    }
    Ok(std::slice::from_raw_parts(ptr.cast::<u8>(), len))
}

/// UTF-8 text the caller passed as `ptr` + `len`.
pub(crate) unsafe fn text<'a>(ptr: *const c_char, len: usize, what: &str) -> Result<&'a str, Failure> {
    std::str::from_utf8(bytes(ptr, len, what)?).map_err(|e| {
        Failure::invalid(format!(
            "{what} is not valid UTF-8 ({e}); cluster names are UTF-8 text, convert it first"
        ))
    })
}

/// Like [`text`], with the empty string meaning "not given".
pub(crate) unsafe fn optional_text<'a>(ptr: *const c_char, len: usize, what: &str) -> Result<Option<&'a str>, Failure> {
    Ok(Some(text(ptr, len, what)?).filter(|s| !s.is_empty()))
}

/// A list given as one string whose items are separated by NUL bytes; empty = no items.
pub(crate) unsafe fn list(ptr: *const c_char, len: usize, what: &str) -> Result<Vec<String>, Failure> {
    let all = text(ptr, len, what)?;
    if all.is_empty() {
        return Ok(Vec::new());
    }
    Ok(all.split('\0').map(str::to_owned).collect())
}

/// A required out-pointer.
pub(crate) unsafe fn out<'a, T>(ptr: *mut T, what: &str) -> Result<&'a mut T, Failure> {
    ptr.as_mut()
        .ok_or_else(|| Failure::invalid(format!("{what} is NULL; pass the address of a variable to receive it")))
}

/// An out-pointer the caller may leave NULL.
pub(crate) unsafe fn optional_out<'a, T>(ptr: *mut T) -> Option<&'a mut T> {
    ptr.as_mut()
}
