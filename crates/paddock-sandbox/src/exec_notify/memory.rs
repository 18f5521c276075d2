//! Reading an exec's arguments from the child's memory (`/proc/PID/mem`), bounded.

use std::fs::File;
use std::os::unix::fs::FileExt;

/// Bytes of one string read at most (a path: `PATH_MAX`; an argument: longer ones are cut).
pub(crate) const MAX_STRING: usize = 64 * 1024;
/// Arguments read at most.
pub(crate) const MAX_ARGS: usize = 16 * 1024;
/// Bytes of all arguments read at most.
pub(crate) const MAX_TOTAL: usize = 2 * 1024 * 1024;

const PAGE: u64 = 4096;

/// The memory of one process.
pub(crate) struct ChildMem(File);

/// A string read from the child; `complete` is false when it was cut at the bound or an
/// unreadable page.
pub(crate) struct CString {
    pub bytes: Vec<u8>,
    pub complete: bool,
}

impl ChildMem {
    pub(crate) fn open(pid: i32) -> std::io::Result<ChildMem> {
        File::open(format!("/proc/{pid}/mem")).map(ChildMem)
    }

    /// The NUL-terminated string at `addr`, at most `max` bytes; read a page at most at a
    /// time, so a string that ends just before an unmapped page is still read whole.
    pub(crate) fn string(&self, addr: u64, max: usize) -> std::io::Result<CString> {
        let mut bytes = Vec::new();
        let mut at = addr;
        let mut buf = [0u8; PAGE as usize];
        while bytes.len() < max {
            let room = (PAGE - at % PAGE) as usize;
            let want = room.min(buf.len()).min(max - bytes.len());
            let n = match self.0.read_at(&mut buf[..want], at) {
                Ok(0) => return Ok(CString { bytes, complete: false }),
                Ok(n) => n,
                Err(e) if bytes.is_empty() => return Err(e),
                Err(_) => return Ok(CString { bytes, complete: false }),
            };
            if let Some(end) = buf[..n].iter().position(|&b| b == 0) {
                bytes.extend_from_slice(&buf[..end]);
                return Ok(CString { bytes, complete: true });
            }
            bytes.extend_from_slice(&buf[..n]);
            at += n as u64;
        }
        Ok(CString { bytes, complete: false })
    }

    /// The pointer at `addr` (native width and order).
    pub(crate) fn pointer(&self, addr: u64) -> std::io::Result<u64> {
        let mut b = [0u8; 8];
        self.0.read_exact_at(&mut b, addr)?;
        Ok(u64::from_ne_bytes(b))
    }

    /// The strings of a NULL-terminated array of pointers (argv), bounded: the strings and
    /// whether every one was read whole.
    pub(crate) fn string_array(&self, addr: u64) -> std::io::Result<(Vec<Vec<u8>>, bool)> {
        let mut out = Vec::new();
        if addr == 0 {
            return Ok((out, true));
        }
        let mut total = 0usize;
        for i in 0..MAX_ARGS as u64 {
            let p = self.pointer(addr + 8 * i)?;
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
        let mem = ChildMem::open(std::process::id() as i32).unwrap();
        let (args, complete) = mem.string_array(ptrs.as_ptr() as u64).unwrap();
        assert!(complete);
        assert_eq!(args, vec![b"hello".to_vec(), "wörld".as_bytes().to_vec()]);
        let cut = mem.string(a.as_ptr() as u64, 3).unwrap();
        assert_eq!((cut.bytes.as_slice(), cut.complete), (&b"hel"[..], false));
    }
}
