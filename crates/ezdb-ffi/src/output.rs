// Bytes handed to the caller: a boxed slice given away as pointer + length, freed only by
// ezdb_bytes_free with the same length.

use std::ffi::c_char;

/// Gives `bytes` to the caller through `out_data`/`out_len`; empty gives NULL and 0.
pub(crate) fn give(bytes: Vec<u8>, out_data: &mut *mut c_char, out_len: &mut usize) {
    *out_len = bytes.len();
    *out_data = if bytes.is_empty() {
        std::ptr::null_mut()
    } else {
        Box::into_raw(bytes.into_boxed_slice()).cast::<c_char>()
    };
}

/// Names joined by NUL bytes, the list format of every listing call.
pub(crate) fn give_list(names: Vec<String>, out_data: &mut *mut c_char, out_len: &mut usize, out_count: &mut usize) {
    *out_count = names.len();
    give(names.join("\0").into_bytes(), out_data, out_len);
}

/// Frees bytes returned by libezdb (`out_data` of a fetch or list call). `len` must be the
/// length returned with them. NULL is a no-op. Never free them any other way.
#[no_mangle]
pub unsafe extern "C" fn ezdb_bytes_free(data: *mut c_char, len: usize) {
    if data.is_null() {
        return;
    }
    let slice = std::ptr::slice_from_raw_parts_mut(data.cast::<u8>(), len);
    drop(Box::from_raw(slice));
}
