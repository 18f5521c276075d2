//! Reading the server name (SNI) from a client's first bytes, when they are a TLS
//! ClientHello: the records are joined until the handshake message is complete, bounded
//! by [`MAX_HELLO`]. Pure: the caller reads, this only looks.

/// The most bytes of a ClientHello the proxy reads before deciding a tunnel.
pub(crate) const MAX_HELLO: usize = 16 * 1024;

/// What the first bytes are.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Hello {
    /// Not enough bytes yet to tell.
    NeedMore,
    /// Not a TLS handshake: another protocol.
    NotTls,
    /// A complete ClientHello, with its server name if it has one.
    Sni(Option<String>),
    /// A TLS handshake that is not a well-formed ClientHello.
    Bad(&'static str),
}

/// Looks at the bytes read so far.
pub(crate) fn inspect(buf: &[u8]) -> Hello {
    match buf.first() {
        None => return Hello::NeedMore,
        Some(&0x16) => {}
        Some(_) => return Hello::NotTls,
    }
    if buf.len() >= 2 && buf[1] != 0x03 {
        return Hello::NotTls;
    }
    let mut handshake = Vec::new();
    let mut pos = 0;
    loop {
        let Some(header) = buf.get(pos..pos + 5) else { return Hello::NeedMore };
        if header[0] != 0x16 {
            return Hello::Bad("a TLS record other than a handshake before the ClientHello ended");
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 || len > MAX_HELLO {
            return Hello::Bad("a TLS record of impossible length");
        }
        let Some(fragment) = buf.get(pos + 5..pos + 5 + len) else { return Hello::NeedMore };
        handshake.extend_from_slice(fragment);
        pos += 5 + len;
        if handshake.len() < 4 {
            continue;
        }
        if handshake[0] != 0x01 {
            return Hello::Bad("the first TLS handshake message is not a ClientHello");
        }
        let hello_len = usize::from(handshake[1]) << 16 | usize::from(handshake[2]) << 8 | usize::from(handshake[3]);
        if hello_len > MAX_HELLO {
            return Hello::Bad("a ClientHello longer than 16 KiB");
        }
        if handshake.len() >= 4 + hello_len {
            return match server_name(&handshake[4..4 + hello_len]) {
                Ok(sni) => Hello::Sni(sni),
                Err(why) => Hello::Bad(why),
            };
        }
    }
}

/// A cursor over a ClientHello body.
struct Reader<'a>(&'a [u8]);

const SHORT: &str = "a truncated ClientHello";

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.0.len() < n {
            return Err(SHORT);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<usize, &'static str> {
        Ok(usize::from(self.take(1)?[0]))
    }

    fn u16(&mut self) -> Result<usize, &'static str> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    fn vec8(&mut self) -> Result<&'a [u8], &'static str> {
        let n = self.u8()?;
        self.take(n)
    }

    fn vec16(&mut self) -> Result<&'a [u8], &'static str> {
        let n = self.u16()?;
        self.take(n)
    }
}

/// The `server_name` extension's host name, if any.
fn server_name(body: &[u8]) -> Result<Option<String>, &'static str> {
    let mut r = Reader(body);
    r.take(2 + 32)?; // legacy_version, random
    r.vec8()?; // legacy_session_id
    r.vec16()?; // cipher_suites
    r.vec8()?; // legacy_compression_methods
    if r.0.is_empty() {
        return Ok(None); // no extensions at all
    }
    let mut exts = Reader(r.vec16()?);
    let mut found = None;
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let data = exts.vec16()?;
        if kind != 0 {
            continue;
        }
        if found.is_some() {
            return Err("two server_name extensions");
        }
        let mut list = Reader(Reader(data).vec16()?);
        while !list.0.is_empty() {
            let name_type = list.u8()?;
            let name = list.vec16()?;
            if name_type == 0 && found.is_none() {
                let text = std::str::from_utf8(name).map_err(|_| "a server name that is not text")?;
                found = Some(text.to_owned());
            }
        }
        if found.is_none() {
            return Err("a server_name extension without a host name");
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello with the given SNI, split into records of at most `record` bytes.
    pub(crate) fn hello(sni: Option<&str>, record: usize) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend([7u8; 32]);
        body.push(0); // session id
        body.extend([0, 2, 0x13, 0x01]); // one cipher suite
        body.extend([1, 0]); // null compression
        let mut exts = Vec::new();
        // An unrelated extension first (supported_versions).
        exts.extend([0, 43, 0, 3, 2, 3, 4]);
        if let Some(name) = sni {
            let n = name.len() as u16;
            exts.extend([0, 0]);
            exts.extend((n + 5).to_be_bytes());
            exts.extend((n + 3).to_be_bytes());
            exts.push(0);
            exts.extend(n.to_be_bytes());
            exts.extend(name.as_bytes());
        }
        body.extend((exts.len() as u16).to_be_bytes());
        body.extend(exts);
        let mut hs = vec![1];
        hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend(body);
        let mut out = Vec::new();
        for chunk in hs.chunks(record) {
            out.extend([0x16, 3, 1]);
            out.extend((chunk.len() as u16).to_be_bytes());
            out.extend(chunk);
        }
        out
    }

    #[test]
    fn sni_is_found_in_one_or_many_records() {
        for record in [16384, 7, 1] {
            let h = hello(Some("api.example.com"), record);
            assert_eq!(inspect(&h), Hello::Sni(Some("api.example.com".into())), "record size {record}");
            // Every strict prefix needs more.
            for cut in 0..h.len() {
                assert_eq!(inspect(&h[..cut]), Hello::NeedMore, "cut at {cut} of {}", h.len());
            }
        }
        assert_eq!(inspect(&hello(None, 100)), Hello::Sni(None));
    }

    #[test]
    fn other_protocols_and_garbage() {
        assert_eq!(inspect(b"GET / HTTP/1.1\r\n"), Hello::NotTls);
        assert_eq!(inspect(b"SSH-2.0-x\r\n"), Hello::NotTls);
        assert_eq!(inspect(&[0x16, 0x01]), Hello::NotTls);
        assert_eq!(inspect(&[0x16, 3, 1, 0, 0]), Hello::Bad("a TLS record of impossible length"));
        let mut h = hello(Some("a.test"), 16384);
        h[5] = 2; // a ServerHello
        assert!(matches!(inspect(&h), Hello::Bad(_)));
        // A record claiming more than it holds, closed by the next record's type.
        let mut h = hello(Some("a.test"), 10);
        h[15] = 0x17; // the second record is application data
        assert!(matches!(inspect(&h), Hello::Bad(_)));
    }
}
