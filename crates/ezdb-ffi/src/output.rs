//! Bytes handed to the caller: a boxed slice given away as pointer + length and recorded, so
//! `ezdb_bytes_free` frees only what libezdb handed out, once, with the length it was given.

use crate::guard::guarded;
use crate::status::{ezdb_status, Failure};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::ffi::c_char;

/// Address -> length of every buffer the caller owns and has not freed yet.
static BUFFERS: Mutex<BTreeMap<usize, usize>> = Mutex::new(BTreeMap::new());

/// Gives `bytes` to the caller through `out_data`/`out_len`; empty gives NULL and 0.
pub(crate) fn give(bytes: Vec<u8>, out_data: &mut *mut c_char, out_len: &mut usize) {
    *out_len = bytes.len();
    *out_data = if bytes.is_empty() {
        std::ptr::null_mut()
    } else {
        let len = bytes.len();
        let ptr = Box::into_raw(bytes.into_boxed_slice()).cast::<c_char>();
        BUFFERS.lock().insert(ptr as usize, len);
        ptr
    };
}

/// Names joined by NUL bytes, the list format of every listing call.
pub(crate) fn give_list(names: Vec<String>, out_data: &mut *mut c_char, out_len: &mut usize, out_count: &mut usize) {
    *out_count = names.len();
    give(names.join("\0").into_bytes(), out_data, out_len);
}

/// Frees bytes returned by libezdb (`out_data` of a fetch or list call). `len` must be the
/// length returned with them. NULL is a no-op (`EZDB_OK`). A pointer already freed, one that
/// libezdb did not hand out, or a wrong `len` is refused with `EZDB_INVALID_ARGUMENT` (nothing
/// is freed, the process goes on). Never free the bytes any other way.
#[no_mangle]
pub unsafe extern "C" fn ezdb_bytes_free(data: *mut c_char, len: usize) -> ezdb_status {
    if data.is_null() {
        return ezdb_status::EZDB_OK;
    }
    guarded(|| {
        let mut buffers = BUFFERS.lock();
        match buffers.get(&(data as usize)) {
            None => Err(Failure::invalid(
                "ezdb_bytes_free: the data was already freed, or did not come from libezdb; nothing was freed",
            )),
            Some(&given) if given != len => Err(Failure::invalid(format!(
                "ezdb_bytes_free: len is {len} but these bytes are {given} long; pass the out_len returned with them"
            ))),
            Some(_) => {
                buffers.remove(&(data as usize));
                drop(buffers);
                let slice = std::ptr::slice_from_raw_parts_mut(data.cast::<u8>(), len);
                drop(Box::from_raw(slice));
                Ok(ezdb_status::EZDB_OK)
            }
        }
    })
}
