//! A TLS upstream on loopback with a CA of its own (given to paddock through `[network]
//! upstream_ca`), for the tests of brokered secrets: HTTP/1.1, one thread per connection,
//! every request kept so a test can see what reached it; `Upstream::serve` answers with a
//! handler of the test's (a fake of some API).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::write;

#[derive(Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {:?} ({} bytes of body)", self.method, self.path, self.headers, self.body.len())
    }
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn host(&self) -> &str {
        self.header("host").unwrap_or("").split(':').next().unwrap_or("")
    }
}

/// What the upstream answers to one request.
pub struct Reply {
    pub status: &'static str,
    pub ctype: &'static str,
    pub body: Vec<u8>,
}

/// Picks the reply to each request (a fake of some API); the default serves the tests of
/// brokered secrets.
pub type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

pub struct Upstream {
    pub port: u16,
    pub ca_file: PathBuf,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    /// An upstream whose certificate names `names`; its CA is written to `dir`.
    pub fn start(dir: &Path, names: &[&str]) -> Upstream {
        Upstream::serve(dir, names, TcpListener::bind("127.0.0.1:0").unwrap(), Arc::new(default_reply))
    }

    /// An upstream on `listener` that answers with `handler`.
    pub fn serve(dir: &Path, names: &[&str], listener: TcpListener, handler: Handler) -> Upstream {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "paddock secrets test upstream CA");
        let ca = params.self_signed(&key).unwrap();
        let ca_file = dir.join("upstream-ca.pem");
        write(&ca_file, &ca.pem(), 0o644);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap()
            .signed_by(&leaf_key, &ca, &key)
            .unwrap();
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )
            .unwrap();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let cfg = Arc::new(cfg);
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let s2 = Arc::clone(&seen);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (cfg, seen, handler) = (Arc::clone(&cfg), Arc::clone(&s2), Arc::clone(&handler));
                std::thread::spawn(move || serve_conn(conn, cfg, seen, handler));
            }
        });
        Upstream { port, ca_file, seen }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve_conn(conn: TcpStream, cfg: Arc<rustls::ServerConfig>, seen: Arc<Mutex<Vec<Seen>>>, handler: Handler) {
    conn.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let Ok(tls) = rustls::ServerConnection::new(cfg) else { return };
    let mut stream = BufReader::new(rustls::StreamOwned::new(tls, conn));
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if stream.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let mut req = Seen { method, path, headers, body: Vec::new() };
        if let Some(n) = req.header("content-length").and_then(|v| v.parse::<usize>().ok()) {
            let mut body = vec![0u8; n];
            if stream.read_exact(&mut body).is_err() {
                return;
            }
            req.body = body;
        } else if req.header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            loop {
                let mut size = String::new();
                if stream.read_line(&mut size).unwrap_or(0) == 0 {
                    return;
                }
                let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                let mut chunk = vec![0u8; n + 2];
                if stream.read_exact(&mut chunk).is_err() {
                    return;
                }
                if n == 0 {
                    break;
                }
                req.body.extend_from_slice(&chunk[..n]);
            }
        }
        let Reply { status, ctype, body } = handler(&req);
        seen.lock().unwrap().push(req);
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nWWW-Authenticate: Basic realm=\"t\"\r\n\r\n",
            body.len()
        );
        let w = stream.get_mut();
        if w.write_all(head.as_bytes()).and_then(|()| w.write_all(&body)).and_then(|()| w.flush()).is_err() {
            return;
        }
    }
}

fn default_reply(req: &Seen) -> Reply {
    let (status, ctype, body) = if req.path.starts_with("/repo.git/") {
        if req.header("authorization").is_none() {
            ("401 Unauthorized", "text/plain", b"auth".to_vec())
        } else {
            ("200 OK", "application/x-git-upload-pack-advertisement", git_refs())
        }
    } else {
        ("200 OK", "text/plain", b"hello from upstream\n".to_vec())
    };
    Reply { status, ctype, body }
}

/// A smart-HTTP ref advertisement with one branch (what `git ls-remote` reads).
pub fn git_refs() -> Vec<u8> {
    let pkt = |s: &str| format!("{:04x}{s}", s.len() + 4);
    let sha = "1111111111111111111111111111111111111111";
    let mut out = pkt("# service=git-upload-pack\n");
    out += "0000";
    out += &pkt(&format!("{sha} HEAD\0symref=HEAD:refs/heads/main agent=test\n"));
    out += &pkt(&format!("{sha} refs/heads/main\n"));
    out += "0000";
    out.into_bytes()
}
