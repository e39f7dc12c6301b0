// Shared by the C ABI tests: a throwaway database, an opened handle on it, and small safe
// wrappers that call the exported C functions exactly as a C or PHP caller would.

#![allow(dead_code)]

use ezdb::*;
use ezdb_testdb::TestDb;
use std::ffi::{c_char, CStr};
use std::ptr;

/// A test database and a libezdb handle on it (schema installed); both released on drop.
pub struct Fixture {
    pub cluster: *mut ezdb_cluster,
    pub db: TestDb,
}

impl Fixture {
    pub fn new() -> Fixture {
        let db = tokio::runtime::Runtime::new().unwrap().block_on(TestDb::create());
        let cluster = open(&db.url);
        assert_eq!(
            unsafe { ezdb_install_schema(cluster) },
            ezdb_status::EZDB_OK,
            "{}",
            last_error()
        );
        Fixture { cluster, db }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        unsafe {
            ezdb_disconnect(self.cluster);
            ezdb_close(self.cluster);
        }
    }
}

pub fn open(url: &str) -> *mut ezdb_cluster {
    let mut cluster = ptr::null_mut();
    let status = unsafe { ezdb_open(url.as_ptr().cast(), url.len(), ptr::null(), &mut cluster) };
    assert_eq!(status, ezdb_status::EZDB_OK, "{}", last_error());
    cluster
}
/// A handle opened with `options`, or the status and last error it was refused with.
pub fn open_with(url: &str, options: &ezdb_options) -> Result<*mut ezdb_cluster, (ezdb_status, String)> {
    let mut cluster = ptr::null_mut();
    match unsafe { ezdb_open(url.as_ptr().cast(), url.len(), options, &mut cluster) } {
        ezdb_status::EZDB_OK => Ok(cluster),
        status => Err((status, last_error())),
    }
}

/// Closes `cluster` and this process's connections of its settings.
pub fn close(cluster: *mut ezdb_cluster) {
    unsafe {
        ezdb_disconnect(cluster);
        ezdb_close(cluster);
    }
}

pub fn last_error() -> String {
    unsafe { CStr::from_ptr(ezdb_last_error()) }
        .to_string_lossy()
        .into_owned()
}

pub fn ptr_len(bytes: &[u8]) -> (*const c_char, usize) {
    (bytes.as_ptr().cast(), bytes.len())
}

pub fn store(cluster: *mut ezdb_cluster, name: &str, data: &[u8], scope: &str) -> ezdb_status {
    unsafe {
        ezdb_store(
            cluster,
            name.as_ptr().cast(),
            name.len(),
            data.as_ptr().cast(),
            data.len(),
            scope.as_ptr().cast(),
            scope.len(),
            "text/plain".as_ptr().cast(),
            10,
            0,
            ptr::null_mut(),
        )
    }
}

/// Fetches through `ezdb_fetch`, copying the bytes out and freeing the library's buffer.
pub fn fetch(cluster: *mut ezdb_cluster, name: &[u8], flags: ezdb_fetch_flags) -> Result<Vec<u8>, ezdb_status> {
    let (mut data, mut len) = (ptr::null_mut(), 0usize);
    let status = unsafe {
        ezdb_fetch(
            cluster,
            name.as_ptr().cast(),
            name.len(),
            flags as u32,
            &mut data,
            &mut len,
            ptr::null_mut(),
        )
    };
    if status != ezdb_status::EZDB_OK {
        return Err(status);
    }
    let bytes = if data.is_null() {
        Vec::new()
    } else {
        unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) }.to_vec()
    };
    unsafe { ezdb_bytes_free(data, len) };
    Ok(bytes)
}

pub fn exists(cluster: *mut ezdb_cluster, name: &str) -> bool {
    let mut out = -1;
    let status = unsafe { ezdb_exists(cluster, name.as_ptr().cast(), name.len(), &mut out) };
    assert_eq!(status, ezdb_status::EZDB_OK, "{}", last_error());
    out == 1
}

pub fn stat(cluster: *mut ezdb_cluster, name: &str) -> Result<ezdb_file_info, ezdb_status> {
    let mut info: ezdb_file_info = unsafe { std::mem::zeroed() };
    match unsafe { ezdb_stat(cluster, name.as_ptr().cast(), name.len(), &mut info) } {
        ezdb_status::EZDB_OK => Ok(info),
        status => Err(status),
    }
}

/// A library-owned text of an `ezdb_file_info` (pointer + length), checked to be NUL-terminated.
pub fn text(ptr: *const c_char, len: usize) -> String {
    assert!(!ptr.is_null(), "a filled info has no NULL text");
    let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len + 1) };
    assert_eq!(bytes[len], 0, "texts are followed by a NUL byte");
    String::from_utf8(bytes[..len].to_vec()).expect("texts are UTF-8")
}

/// Splits a NUL-separated list returned by the library and frees it.
pub fn take_list(data: *mut c_char, len: usize, count: usize) -> Vec<String> {
    let names = if data.is_null() {
        Vec::new()
    } else {
        let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) };
        String::from_utf8(bytes.to_vec())
            .unwrap()
            .split('\0')
            .map(str::to_owned)
            .collect()
    };
    unsafe { ezdb_bytes_free(data, len) };
    assert_eq!(names.len(), count);
    names
}
