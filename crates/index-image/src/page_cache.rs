//! Reading local files on the runtime's own threads when, and only when, the kernel's page
//! cache already holds the bytes: a read that would wait for the disk is refused (Linux
//! `preadv2` with `RWF_NOWAIT`, `mincore` for mappings) and the caller moves it to the
//! blocking pool. A hit of the disk tier then costs no hop between threads (two context
//! switches and a wake-up, which cost more than copying a file of tens of KB), and a cold
//! disk still never stalls the threads that serve the other requests.

use std::fs::File;

/// Where a read found its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadPath {
    /// All in the page cache: read on the serving thread.
    PageCache = 0,
    /// Some of it had to come from the disk: read on a blocking thread.
    Disk = 1,
}

impl ReadPath {
    /// The value of the `from` label in the metrics.
    pub fn label(self) -> &'static str {
        match self {
            ReadPath::PageCache => "page_cache",
            ReadPath::Disk => "disk",
        }
    }
}

/// Reads into `buf`'s spare capacity from `offset` what the page cache holds, without waiting
/// for the disk: `buf` ends up full, or short by what the caller must read on a blocking thread
/// (all of it where the platform cannot tell).
pub fn read_cached(file: &File, offset: u64, buf: &mut Vec<u8>) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let start = buf.len();
        while buf.len() < buf.capacity() {
            let spare = buf.spare_capacity_mut();
            let iov = libc::iovec {
                iov_base: spare.as_mut_ptr().cast(),
                iov_len: spare.len(),
            };
            let Ok(at) = libc::off_t::try_from(offset + (buf.len() - start) as u64) else {
                break;
            };
            // SAFETY: the iovec covers `buf`'s spare capacity, which stays allocated and is
            // not otherwise borrowed during the call; the kernel writes at most iov_len bytes.
            let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, at, libc::RWF_NOWAIT) };
            // Negative: EAGAIN (not cached), EOPNOTSUPP (the filesystem cannot say), EINTR;
            // 0: the end of the file. The blocking read that follows sorts out which.
            let Ok(n) = usize::try_from(n) else { break };
            if n == 0 {
                break;
            }
            // SAFETY: the kernel initialised the first `n` bytes of the spare capacity.
            unsafe { buf.set_len(buf.len() + n) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (file, offset, buf);
    }
}

/// Whether every page under `bytes` (a part of a file mapping) is in the page cache, so that
/// writing them to a socket cannot wait for the disk. `false` where the platform cannot tell.
pub fn is_resident(bytes: &[u8]) -> bool {
    #[cfg(target_os = "linux")]
    {
        if bytes.is_empty() {
            return true;
        }
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let start = bytes.as_ptr() as usize;
        let base = start & !(page - 1);
        let span = bytes.len() + (start - base);
        let mut pages = vec![0u8; span.div_ceil(page)];
        // SAFETY: [base, base + span) lies within one mapping (the pages under `bytes`), and
        // `pages` has one byte per page of it, as mincore writes.
        let status = unsafe { libc::mincore(base as *mut libc::c_void, span, pages.as_mut_ptr()) };
        status == 0 && pages.iter().all(|p| p & 1 == 1)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = bytes;
        false
    }
}
