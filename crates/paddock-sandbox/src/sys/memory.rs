//! Handing back the code pages a process ran during set-up: once a one-shot run's caller,
//! helper or reaper has only waited for [`RELEASE_CODE_AFTER`], the pages of the binary
//! and of the libraries it faulted in to start the sandbox are unmapped from it
//! ([`release_code`]). The pages stay in the page cache (they are the file's); a page the
//! process runs again faults back in from there.

use std::ffi::c_void;
use std::time::Duration;

/// How long a process that only waits (a one-shot run's caller, helper and reaper) waits
/// before it hands back its code: a short run ends before and does not pay for it.
pub const RELEASE_CODE_AFTER: Duration = Duration::from_millis(100);

/// `DT_TEXTREL` and `DF_TEXTREL` (in `DT_FLAGS`): an object whose code the loader
/// relocated in place, so its code pages are private copies, not the file's.
const DT_TEXTREL: i64 = 22;
const DT_FLAGS: i64 = 30;
const DF_TEXTREL: u64 = 0x4;

/// What [`release_code`] handed back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Released {
    /// Read-only segments unmapped.
    pub segments: usize,
    /// Their size in bytes (mapped or not).
    pub bytes: usize,
}

/// Unmaps (`MADV_DONTNEED`) every read-only loaded segment of the binary and its
/// libraries: code, read-only data, unwind tables. Writable segments (data, the
/// relocated read-only data, the GOT) are left alone: their pages are this process's
/// own. So is the vDSO, and so is any object relocated in its code (`DT_TEXTREL`), whose
/// code pages are private copies. The process must not rely on those pages' contents
/// beyond what the file holds: true of code and read-only data no one writes.
pub(crate) fn release_code() -> Released {
    let mut out = Released::default();
    // SAFETY: the callback only reads the program headers and the dynamic section the
    // loader describes (both mapped for the life of the object) and calls `madvise` on
    // page ranges of the object's read-only segments; `data` is the `Released` above,
    // alive for the call.
    unsafe { libc::dl_iterate_phdr(Some(each_object), (&mut out as *mut Released).cast::<c_void>()) };
    // The heap's free pages too (glibc keeps them for the next allocation).
    #[cfg(target_env = "gnu")]
    // SAFETY: `malloc_trim` has no preconditions.
    unsafe {
        libc::malloc_trim(0)
    };
    out
}

/// One loaded object of [`release_code`].
unsafe extern "C" fn each_object(info: *mut libc::dl_phdr_info, _size: libc::size_t, data: *mut c_void) -> libc::c_int {
    // SAFETY: `dl_iterate_phdr` passes a valid `info` for the duration of the call, and
    // `data` is the `Released` that `release_code` passed.
    let (info, out) = unsafe { (&*info, &mut *data.cast::<Released>()) };
    if info.dlpi_phdr.is_null() || info.dlpi_phnum == 0 {
        return 0;
    }
    // SAFETY: `dlpi_phdr` points to `dlpi_phnum` program headers of a loaded object.
    let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
    let base = info.dlpi_addr as usize;
    // SAFETY: `getauxval` has no preconditions; 0 means there is no vDSO.
    let vdso = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) } as usize;
    let range = |h: &libc::Elf64_Phdr| (base + h.p_vaddr as usize, base + (h.p_vaddr + h.p_memsz) as usize);
    let loads = || headers.iter().filter(|h| h.p_type == libc::PT_LOAD);
    if vdso != 0 && loads().any(|h| (range(h).0..range(h).1).contains(&vdso)) {
        return 0;
    }
    if let Some(dynamic) = headers.iter().find(|h| h.p_type == libc::PT_DYNAMIC) {
        // SAFETY: the dynamic section is mapped for the life of the object and ends
        // with `DT_NULL`.
        if unsafe { relocates_code(range(dynamic).0 as *const [i64; 2]) } {
            return 0;
        }
    }
    let page = page_size();
    for h in loads().filter(|h| h.p_flags & libc::PF_W == 0 && h.p_memsz > 0) {
        let (start, end) = range(h);
        // Whole pages inside the segment only: a page it shares with a writable
        // neighbour (possible only with unusual linker scripts) is left.
        let first = start.div_ceil(page) * page;
        let last = end / page * page;
        if last <= first {
            continue;
        }
        // SAFETY: `[first, last)` lies inside a read-only segment of a loaded object,
        // which no one writes: after `MADV_DONTNEED` its pages fault back in with the
        // file's contents, the same bytes.
        if unsafe { libc::madvise(first as *mut c_void, last - first, libc::MADV_DONTNEED) } == 0 {
            out.segments += 1;
            out.bytes += last - first;
        }
    }
    0
}

/// Whether the dynamic section at `dynamic` marks its object as relocated in its code.
///
/// # Safety
/// `dynamic` must point to a mapped dynamic section that ends with `DT_NULL`.
unsafe fn relocates_code(mut dynamic: *const [i64; 2]) -> bool {
    loop {
        // SAFETY: the caller's promise: every entry up to `DT_NULL` is mapped.
        let [tag, val] = unsafe { *dynamic };
        match tag {
            0 => return false,
            DT_TEXTREL => return true,
            DT_FLAGS if (val as u64) & DF_TEXTREL != 0 => return true,
            _ => {}
        }
        // SAFETY: the entry read was not `DT_NULL`, so another follows.
        dynamic = unsafe { dynamic.add(1) };
    }
}

/// The system's page size (4 KiB when `sysconf` does not say).
pub(super) fn page_size() -> usize {
    // SAFETY: `sysconf` has no preconditions.
    match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as usize,
        _ => 4096,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The resident KiB of this process's mappings of its own binary's code (`r-xp`), from
    /// the text of `/proc/self/smaps`.
    fn code_resident(smaps: &[u8]) -> u64 {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let mut ours = false;
        let mut kib = 0;
        for line in String::from_utf8_lossy(smaps).lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.first().is_some_and(|f| f.contains('-') && !f.ends_with(':')) {
                ours = fields.get(1) == Some(&"r-xp") && fields.get(5).map(std::path::Path::new) == Some(exe.as_path());
            } else if ours && fields.first() == Some(&"Rss:") {
                kib += fields[1].parse::<u64>().unwrap();
            }
        }
        kib
    }

    /// `/proc/self/smaps` as it is now, read into `buf` with as little of this binary's
    /// code as can be (the descriptor and the buffer made beforehand, `read(2)` called
    /// directly): a page of code run again maps back with its neighbours (more of them
    /// where the page cache holds large folios), so the code run between a release and the
    /// reading should be the least there is.
    fn smaps_now(buf: &mut [u8]) -> usize {
        let file = std::fs::File::open("/proc/self/smaps").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        let mut len = 0;
        loop {
            // SAFETY: reading into the unfilled part of `buf`.
            let n = unsafe { libc::read(fd, buf[len..].as_mut_ptr().cast(), buf.len() - len) };
            if n <= 0 {
                assert_eq!(n, 0, "read /proc/self/smaps: {}", std::io::Error::last_os_error());
                return len;
            }
            len += n as usize;
            assert!(len < buf.len(), "/proc/self/smaps filled the buffer");
        }
    }

    /// Maps in every page of this process's mappings of its own binary's code, by reading
    /// a byte of each.
    fn touch_all_code() {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        for line in maps.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(1) != Some(&"r-xp") || fields.get(5).map(std::path::Path::new) != Some(exe.as_path()) {
                continue;
            }
            let (start, end) = fields[0].split_once('-').unwrap();
            let (start, end) = (usize::from_str_radix(start, 16).unwrap(), usize::from_str_radix(end, 16).unwrap());
            for page in (start..end).step_by(page_size()) {
                // SAFETY: `page` lies in a readable mapping of this process (`r-xp`), which
                // stays mapped: the binary's code.
                unsafe { std::ptr::read_volatile(page as *const u8) };
            }
        }
    }

    /// The binary's code leaves this process's resident set, and the process still runs
    /// (its code faults back in). All of it is made resident first, so what the release
    /// leaves (the code run after it, mapped back with its neighbours) is compared with the
    /// whole, whatever of it this test process happened to run before. In a forked child
    /// of one thread: the test binary's other threads (libtest runs tests side by side)
    /// would map back the code they run between the release and the reading.
    #[test]
    fn released_code_leaves_the_resident_set_and_runs_again() {
        let (mut first, mut second) = (vec![0u8; 16 << 20], vec![0u8; 16 << 20]);
        let (mut read_end, mut write_end) = std::io::pipe().unwrap();
        let code = super::super::in_child(|| {
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                touch_all_code();
                let n = smaps_now(&mut first);
                let r = release_code();
                let m = smaps_now(&mut second);
                let (before, after) = (code_resident(&first[..n]), code_resident(&second[..m]));
                let v: Vec<String> = (0..100).map(|i| format!("{i}")).collect();
                let again = release_code();
                let said = format!("{r:?} {before} KiB before, {after} KiB after; again {again:?}");
                let _ = std::io::Write::write_all(&mut write_end, said.as_bytes());
                let ok = r.segments >= 2
                    && r.bytes >= 64 * 1024
                    && after * 2 < before
                    && v.join(",").len() == 289
                    && again == r;
                i32::from(!ok)
            }));
            run.unwrap_or(2)
        });
        drop(write_end);
        let mut said = String::new();
        std::io::Read::read_to_string(&mut read_end, &mut said).unwrap();
        assert_eq!(code, 0, "released code (segments >= 2, >= 64 KiB, under half stays resident): {said}");
    }
}
