//! Where the API listens: a loopback TCP address (127.0.0.0/8 or ::1) or a unix socket
//! created 0600, and which `Host` headers count as loopback. Anything else is refused
//! before a socket is bound.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The default listen address of `paddock serve`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";

/// Where the API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A loopback TCP address (checked by [`parse_listen`]).
    Tcp(SocketAddr),
    /// A unix socket path (created 0600).
    Unix(PathBuf),
}

/// Why a listen address is refused.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// Not `HOST:PORT` with a literal address.
    #[error("--listen {given}: {why}; give a loopback address and port such as 127.0.0.1:7878 or [::1]:7878 (port 0 picks a free port)")]
    Malformed {
        /// What was given.
        given: String,
        /// What is wrong.
        why: String,
    },
    /// An address that is not loopback.
    #[error(
        "--listen {given}: refused: `{host}` is not a loopback address. paddock serve listens only on 127.0.0.0/8, ::1 or a unix socket (--socket PATH): it runs tools with your rights, and nothing but this machine may reach it. To use it from another machine, forward a port over SSH from there: `ssh -L 8080:127.0.0.1:{port} THIS_HOST`, then talk to 127.0.0.1:8080 on that machine"
    )]
    NotLoopback {
        /// What was given.
        given: String,
        /// The host part.
        host: String,
        /// The port asked for.
        port: u16,
    },
    /// A `--socket` path longer than a unix socket's address may be.
    #[error(
        "--socket {path}: {len} bytes, longer than the {SOCKET_PATH_MAX} bytes a unix socket's path may have; choose a shorter path"
    )]
    SocketTooLong {
        /// The path (escaped).
        path: String,
        /// Its length in bytes.
        len: usize,
    },
    /// A `--socket` path where no socket can be made: its directory is missing, or a file
    /// that is not a socket is there.
    #[error("--socket {path}: {why}")]
    SocketPath {
        /// The path (escaped).
        path: String,
        /// What is wrong.
        why: String,
    },
}

/// The longest path a unix socket may be bound or reached at: `sun_path` holds 108 bytes
/// with the terminating NUL.
pub const SOCKET_PATH_MAX: usize = 107;

/// Checks a `--socket` path before anything is set up: short enough for `sun_path`, in a
/// directory that exists, and not an existing file other than a socket (a stale socket is
/// replaced when bound; a live one is refused then).
pub fn check_socket_path(path: &Path) -> Result<(), ListenError> {
    let shown = || paddock_audit::Escaped(&path.to_string_lossy()).to_string();
    let len = path.as_os_str().len();
    if len > SOCKET_PATH_MAX {
        return Err(ListenError::SocketTooLong { path: shown(), len });
    }
    let refused = |why: String| ListenError::SocketPath { path: shown(), why };
    if path.file_name().is_none() || std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()).ends_with(b"/") {
        return Err(refused("names no file (it ends with a slash)".into()));
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(refused(format!("{} is not a directory", paddock_audit::Escaped(&dir.to_string_lossy())))),
        Err(e) => {
            return Err(refused(format!(
                "its directory {} cannot be used: {e}",
                paddock_audit::Escaped(&dir.to_string_lossy())
            )))
        }
    }
    if let Some((d, why)) = open_to_others(dir) {
        return Err(refused(format!(
            "the directory {} on its way {why}: another user could put a socket of their own in its place and be sent the token of every client; choose a path whose directories only you (or root) can change",
            paddock_audit::Escaped(&d.to_string_lossy())
        )));
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_socket() => {
            Err(refused("exists and is not a socket; remove it or choose another path".into()))
        }
        _ => Ok(()),
    }
}

/// The first directory on the way to `dir` (itself and its ancestors, as named and as
/// resolved) that another user could change an entry of: owned by another user than
/// this one or root, or writable by its group or others without the sticky bit; and why
/// (found by an attack: in a directory anyone could write, a socket renamed away and one
/// bound in its place received a client's token).
fn open_to_others(dir: &Path) -> Option<(PathBuf, String)> {
    use std::os::unix::fs::MetadataExt;
    let me = rustix::process::geteuid().as_raw();
    let given = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let resolved = std::fs::canonicalize(dir).unwrap_or_else(|_| given.clone());
    // A link on the way is its owner's to re-point, sticky directory or not (found by an
    // attack: a link another user owned in /tmp, re-pointed at their socket).
    for d in given.ancestors() {
        match std::fs::symlink_metadata(d) {
            Ok(m) if m.file_type().is_symlink() && m.uid() != 0 && m.uid() != me => {
                return Some((d.to_path_buf(), format!("is a symlink owned by uid {}", m.uid())));
            }
            _ => {}
        }
    }
    let mut ways: Vec<PathBuf> = given.ancestors().chain(resolved.ancestors()).map(Path::to_path_buf).collect();
    ways.dedup();
    for d in ways {
        let Ok(m) = std::fs::metadata(&d) else { continue };
        if m.uid() != 0 && m.uid() != me {
            return Some((d, format!("belongs to uid {}", m.uid())));
        }
        if m.mode() & 0o022 != 0 && m.mode() & 0o1000 == 0 {
            return Some((d, "is writable by its group or others, without the sticky bit".into()));
        }
    }
    None
}

/// Parses `--listen`: `127.x.x.x:PORT`, `[::1]:PORT` or `localhost:PORT` (taken as
/// 127.0.0.1, never resolved). Every other address — `0.0.0.0`, `[::]`, a LAN or public
/// address, any other host name — is refused with a hint to use an SSH tunnel.
pub fn parse_listen(given: &str) -> Result<SocketAddr, ListenError> {
    let malformed = |why: &str| ListenError::Malformed { given: given.into(), why: why.into() };
    let (host, port) = split_host_port(given).ok_or_else(|| malformed("expected HOST:PORT"))?;
    let port: u16 = port.parse().map_err(|_| malformed("the port is not a number from 0 to 65535"))?;
    let ip = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        match host.parse::<IpAddr>() {
            Ok(ip) if is_loopback(ip) => ip,
            _ => {
                return Err(ListenError::NotLoopback {
                    given: given.into(),
                    host: host.into(),
                    port: if port == 0 { 7878 } else { port },
                })
            }
        }
    };
    Ok(SocketAddr::new(ip, port))
}

/// 127.0.0.0/8 or ::1 (an IPv4-mapped form of either is not accepted: a socket bound to
/// `::ffff:127.0.0.1` is a dual-stack socket).
fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6 == Ipv6Addr::LOCALHOST,
    }
}

/// `host:port` or `[v6]:port` → (host without brackets, port text).
fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        return Some((host, port));
    }
    let (host, port) = s.rsplit_once(':')?;
    (!host.contains(':') && !host.is_empty()).then_some((host, port))
}

/// Whether a `Host` header names this machine's loopback: `127.x.x.x`, `localhost` or
/// `[::1]`, each with an optional port. Anything else (a DNS name that a browser page
/// rebound to 127.0.0.1, say) is not.
pub fn is_loopback_host(value: &str) -> bool {
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, "")) => (h, None),
            Some((h, after)) => match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None => return false,
            },
            None => return false,
        }
    } else {
        match value.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (value, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err() {
            return false;
        }
    }
    if value.starts_with('[') {
        return host.parse::<Ipv6Addr>().is_ok_and(|ip| ip == Ipv6Addr::LOCALHOST);
    }
    host.eq_ignore_ascii_case("localhost") || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// Binds a unix socket at `path` with mode 0600, race-free: it is bound inside a fresh
/// 0700 directory, chmod'ed, then renamed into place. A stale socket (nobody listening)
/// at `path` is replaced; a live one, or any other file, is an error.
pub fn bind_unix(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!("{}: a server is already listening there", path.display()),
                ))
            }
            Err(_) => std::fs::remove_file(path)?,
        },
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{}: exists and is not a socket", path.display()),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "the socket path has no file name"))?;
    // A name of this call's own, short (the socket's path inside it must fit `sun_path`):
    // the pid and a counter of this process; one left by a killed process whose pid this
    // one reuses is skipped.
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let mut attempt = 0;
    let staging = loop {
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let staging = parent.join(format!(".{}.{}.{n}.tmp", name.to_string_lossy(), std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&staging) {
            Ok(()) => break staging,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 7 => attempt += 1,
            Err(e) => return Err(e),
        }
    };
    let inner = staging.join("s");
    let result = (|| {
        // The staging path is longer than `path` when the socket's name is short: past the
        // limit of `sun_path`, it is bound through a descriptor of the staging directory.
        let listener = if inner.as_os_str().len() <= SOCKET_PATH_MAX {
            std::os::unix::net::UnixListener::bind(&inner)?
        } else {
            use std::os::fd::AsRawFd;
            use std::os::unix::fs::OpenOptionsExt;
            let dir = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW)
                .open(&staging)?;
            std::os::unix::net::UnixListener::bind(format!("/proc/self/fd/{}/s", dir.as_raw_fd()))?
        };
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&inner, path)?;
        listener.set_nonblocking(true)?;
        tokio::net::UnixListener::from_std(listener)
    })();
    let _ = std::fs::remove_file(&inner);
    let _ = std::fs::remove_dir(&staging);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_listen_addresses_are_accepted() {
        assert_eq!(parse_listen("127.0.0.1:7878").unwrap(), "127.0.0.1:7878".parse().unwrap());
        assert_eq!(parse_listen("127.3.4.5:0").unwrap(), "127.3.4.5:0".parse().unwrap());
        assert_eq!(parse_listen("[::1]:80").unwrap(), "[::1]:80".parse().unwrap());
        assert_eq!(parse_listen("localhost:9").unwrap(), "127.0.0.1:9".parse().unwrap());
    }

    #[test]
    fn other_addresses_are_refused_with_an_ssh_hint() {
        for a in [
            "0.0.0.0:7878",
            "[::]:7878",
            "192.168.1.10:7878",
            "10.0.0.1:1",
            "localhost.example:7878",
            "example.com:80",
            "[::ffff:127.0.0.1]:1",
            "[fe80::1]:1",
        ] {
            let e = parse_listen(a).unwrap_err();
            assert!(matches!(e, ListenError::NotLoopback { .. }), "{a}: {e}");
            assert!(e.to_string().contains("ssh -L"), "{e}");
        }
        for a in ["127.0.0.1", "127.0.0.1:x", "127.0.0.1:70000", ":80", "::1:80"] {
            assert!(parse_listen(a).is_err(), "{a}");
        }
    }

    #[test]
    fn host_headers() {
        for h in ["127.0.0.1", "127.0.0.1:7878", "127.9.9.9:1", "localhost", "LOCALHOST:80", "[::1]", "[::1]:7878"] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "evil.example",
            "evil.example:7878",
            "localhost.example",
            "127.0.0.1.nip.io",
            "0.0.0.0:1",
            "192.168.1.10",
            "[::]:1",
            "[::1]x",
            "127.0.0.1:",
            "127.0.0.1:99999",
            "::1",
            "",
            "localhost:80:80",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    /// A path of the longest length a socket may have is bound (its staging path is
    /// longer); one byte more, a missing directory or a file that is not a socket are
    /// refused naming the path.
    #[tokio::test]
    async fn socket_paths_up_to_the_limit_are_bound_and_others_refused() {
        let dir = tempfile::tempdir().unwrap();
        let at = |len: usize| {
            let base = dir.path().join("");
            let base = base.to_str().unwrap();
            PathBuf::from(format!("{base}{}", "s".repeat(len - base.len())))
        };
        let longest = at(SOCKET_PATH_MAX);
        check_socket_path(&longest).unwrap();
        let _l = bind_unix(&longest).unwrap();
        assert!(std::fs::symlink_metadata(&longest).unwrap().file_type().is_socket());
        let e = check_socket_path(&at(SOCKET_PATH_MAX + 1)).unwrap_err();
        assert!(matches!(e, ListenError::SocketTooLong { len: 108, .. }), "{e}");
        assert!(e.to_string().contains("107 bytes") && e.to_string().contains(dir.path().to_str().unwrap()), "{e}");
        let missing = dir.path().join("nope/api.sock");
        let e = check_socket_path(&missing).unwrap_err().to_string();
        assert!(e.contains(missing.to_str().unwrap()) && e.contains("No such file"), "{e}");
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let e = check_socket_path(&file).unwrap_err().to_string();
        assert!(e.contains("not a socket"), "{e}");
        let e = check_socket_path(&file.join("api.sock")).unwrap_err().to_string();
        assert!(e.contains("is not a directory"), "{e}");
    }

    #[tokio::test]
    async fn unix_socket_is_0600_and_stale_ones_are_replaced() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.sock");
        let l = bind_unix(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert!(bind_unix(&path).is_err(), "a live socket is not replaced");
        drop(l);
        let _l = bind_unix(&path).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no staging left behind");
    }
}
