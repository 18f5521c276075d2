//! Reading an exec's arguments from the child's memory, bounded: with
//! `process_vm_readv(2)`, or through `/proc/PID/mem` where that call is refused (a
//! seccomp profile of a container, a kernel without it).

use std::fs::File;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::FileExt;

/// Bytes of one string read at most (a path: `PATH_MAX`; an argument: longer ones are cut).
pub(crate) const MAX_STRING: usize = 64 * 1024;
/// Arguments read at most.
pub(crate) const MAX_ARGS: usize = 16 * 1024;
/// Bytes of all arguments read at most.
pub(crate) const MAX_TOTAL: usize = 2 * 1024 * 1024;

const PAGE: u64 = 4096;
/// Pages kept after reading them: an exec's path, argv array and argument strings mostly
/// lie on two or three pages, each then read once.
const CACHED_PAGES: usize = 4;

/// The memory of one process, read a whole page at a time (access is granted or refused per
/// page) and the last pages kept. Read by pid: what was read is the notifying task's only if
/// its notification is still valid afterwards (the caller checks).
pub(crate) struct ChildMem<'a> {
    pid: libc::pid_t,
    /// The process's `/proc/PID` directory, for `mem` when `process_vm_readv` is refused.
    dir: Option<BorrowedFd<'a>>,
    /// Its `mem`, once `process_vm_readv` was refused.
    file: Option<File>,
    pages: Vec<Page>,
    next: usize,
}

/// One page of the child's memory: `data` is what could be read from `base` (a page at most).
struct Page {
    base: u64,
    data: Box<[u8]>,
}

/// A string read from the child; `complete` is false when it was cut at the bound or an
/// unreadable page.
pub(crate) struct CString {
    pub bytes: Vec<u8>,
    pub complete: bool,
}

impl<'a> ChildMem<'a> {
    /// The memory of process `pid`, whose `/proc/PID` directory is `dir`.
    pub(crate) fn new(pid: libc::pid_t, dir: BorrowedFd<'a>) -> ChildMem<'a> {
        ChildMem { pid, dir: Some(dir), file: None, pages: Vec::with_capacity(CACHED_PAGES), next: 0 }
    }

    /// Through an open `mem` file only.
    #[cfg(test)]
    fn of_file(file: File) -> ChildMem<'static> {
        ChildMem { pid: 0, dir: None, file: Some(file), pages: Vec::new(), next: 0 }
    }

    /// Reads from `addr` into `buf`: the bytes read (a page at most is asked for at a time).
    fn read_at(&mut self, buf: &mut [u8], addr: u64) -> std::io::Result<usize> {
        if self.file.is_none() {
            match crate::sys::process_vm_read(self.pid, buf, addr) {
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
                    let dir = self.dir.ok_or(e)?;
                    let flags = rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC;
                    let fd = rustix::fs::openat(dir, "mem", flags, rustix::fs::Mode::empty())?;
                    self.file = Some(File::from(fd));
                }
                r => return r,
            }
        }
        match &self.file {
            Some(f) => f.read_at(buf, addr),
            None => Err(std::io::Error::from_raw_os_error(libc::EIO)),
        }
    }

    /// The bytes from `at` to the end of its page (fewer when the page could not be read
    /// whole; empty when nothing of it from `at` on).
    fn page_at(&mut self, at: u64) -> std::io::Result<&[u8]> {
        let base = at - at % PAGE;
        let slot = match self.pages.iter().position(|p| p.base == base) {
            Some(i) => i,
            None => {
                let mut buf = vec![0u8; PAGE as usize];
                let n = self.read_at(&mut buf, base)?;
                buf.truncate(n);
                let page = Page { base, data: buf.into_boxed_slice() };
                if self.pages.len() < CACHED_PAGES {
                    self.pages.push(page);
                    self.pages.len() - 1
                } else {
                    let i = self.next;
                    self.next = (i + 1) % CACHED_PAGES;
                    self.pages[i] = page;
                    i
                }
            }
        };
        let data = &self.pages[slot].data;
        Ok(data.get((at - base) as usize..).unwrap_or(&[]))
    }

    /// The NUL-terminated string at `addr`, at most `max` bytes; read a page at a time, so
    /// a string that ends just before an unmapped page is still read whole.
    pub(crate) fn string(&mut self, addr: u64, max: usize) -> std::io::Result<CString> {
        let mut bytes = Vec::new();
        let mut at = addr;
        while bytes.len() < max {
            let chunk = match self.page_at(at) {
                Ok(c) if !c.is_empty() => c,
                Ok(_) => return Ok(CString { bytes, complete: false }),
                Err(e) if bytes.is_empty() => return Err(e),
                Err(_) => return Ok(CString { bytes, complete: false }),
            };
            let part = &chunk[..chunk.len().min(max - bytes.len())];
            if let Some(end) = part.iter().position(|&b| b == 0) {
                bytes.extend_from_slice(&part[..end]);
                return Ok(CString { bytes, complete: true });
            }
            bytes.extend_from_slice(part);
            at = match at.checked_add(part.len() as u64) {
                Some(a) => a,
                None => return Ok(CString { bytes, complete: false }),
            };
        }
        Ok(CString { bytes, complete: false })
    }

    /// The pointer at `addr` (native width and order; it may straddle two pages).
    pub(crate) fn pointer(&mut self, addr: u64) -> std::io::Result<u64> {
        let mut b = [0u8; 8];
        let mut got = 0;
        while got < b.len() {
            let at = addr.checked_add(got as u64).ok_or_else(|| std::io::Error::from_raw_os_error(libc::EFAULT))?;
            let chunk = self.page_at(at)?;
            if chunk.is_empty() {
                return Err(std::io::Error::from_raw_os_error(libc::EIO));
            }
            let n = chunk.len().min(b.len() - got);
            b[got..got + n].copy_from_slice(&chunk[..n]);
            got += n;
        }
        Ok(u64::from_ne_bytes(b))
    }

    /// The strings of a NULL-terminated array of pointers (argv), bounded: the strings and
    /// whether every one was read whole.
    pub(crate) fn string_array(&mut self, addr: u64) -> std::io::Result<(Vec<Vec<u8>>, bool)> {
        let mut out = Vec::new();
        if addr == 0 {
            return Ok((out, true));
        }
        let mut total = 0usize;
        for i in 0..MAX_ARGS as u64 {
            let p = self.pointer(addr.wrapping_add(8 * i))?;
            if p == 0 {
                return Ok((out, true));
            }
            let s = self.string(p, MAX_STRING.min(MAX_TOTAL.saturating_sub(total)))?;
            total += s.bytes.len() + 1;
            out.push(s.bytes);
            if !s.complete || total >= MAX_TOTAL {
                return Ok((out, false));
            }
        }
        Ok((out, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_argv_like_a_childs() {
        let a = std::ffi::CString::new("hello").unwrap();
        let b = std::ffi::CString::new("wörld").unwrap();
        let ptrs: [u64; 3] = [a.as_ptr() as u64, b.as_ptr() as u64, 0];
        let dir = std::fs::File::open("/proc/self").unwrap();
        let mut mem = ChildMem::new(std::process::id() as i32, std::os::fd::AsFd::as_fd(&dir));
        let (args, complete) = mem.string_array(ptrs.as_ptr() as u64).unwrap();
        assert!(complete);
        assert_eq!(args, vec![b"hello".to_vec(), "wörld".as_bytes().to_vec()]);
        let cut = mem.string(a.as_ptr() as u64, 3).unwrap();
        assert_eq!((cut.bytes.as_slice(), cut.complete), (&b"hel"[..], false));
    }

    #[test]
    fn strings_and_pointers_across_pages() {
        let page = PAGE as usize;
        // SAFETY: a fresh private anonymous mapping of two pages, unmapped at the end of the
        // test, never aliased.
        let base = unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                2 * page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            p.cast::<u8>()
        };
        // SAFETY: the two pages are ours, readable and writable.
        let mem2 = unsafe { std::slice::from_raw_parts_mut(base, 2 * page) };
        mem2.fill(b'x');
        mem2[page + 10] = 0; // a string from page 0 into page 1
        let addr = base as u64;
        let ptr_at = page - 4; // a pointer straddling the two pages
        mem2[ptr_at..ptr_at + 8].copy_from_slice(&0x1122_3344_5566_7788u64.to_ne_bytes());
        mem2[2 * page - 1] = 0; // a string ending on the mapping's last byte
        let dir = std::fs::File::open("/proc/self").unwrap();
        let by_pid = ChildMem::new(std::process::id() as i32, std::os::fd::AsFd::as_fd(&dir));
        let by_file = ChildMem::of_file(File::open("/proc/self/mem").unwrap());
        for mut mem in [by_pid, by_file] {
            let s = mem.string(addr + page as u64 - 20, MAX_STRING).unwrap();
            assert!(s.complete);
            assert_eq!(s.bytes.len(), 30);
            assert_eq!(mem.pointer(addr + ptr_at as u64).unwrap(), 0x1122_3344_5566_7788);
            let end = mem.string(addr + 2 * page as u64 - 5, MAX_STRING).unwrap();
            assert_eq!((end.bytes.as_slice(), end.complete), (&b"xxxx"[..], true));
            let cut = mem.string(addr + page as u64 + 20, 100).unwrap();
            assert_eq!((cut.bytes.len(), cut.complete), (100, false));
            assert!(mem.string(16, MAX_STRING).is_err(), "the zero page is never mapped");
            assert!(mem.pointer(16).is_err());
        }
        // SAFETY: the mapping made above, no longer used.
        assert_eq!(unsafe { libc::munmap(base.cast(), 2 * page) }, 0);
    }
}
