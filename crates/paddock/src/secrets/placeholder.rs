//! Placeholders: `paddock-secret-NAME-<32 hex>`, 128 random bits from the kernel, new for
//! every session. Worthless outside paddock: only this session's proxy knows what it
//! stands for.

use std::io::Read;

/// The prefix of every placeholder.
pub(crate) const PREFIX: &str = "paddock-secret-";

/// A new placeholder for the secret `name`.
pub(crate) fn generate(name: &str) -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{PREFIX}{name}-{hex}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_are_random_and_named() {
        let a = super::generate("gh").unwrap();
        let b = super::generate("gh").unwrap();
        assert!(a.starts_with("paddock-secret-gh-") && a.len() == "paddock-secret-gh-".len() + 32, "{a}");
        assert_ne!(a, b);
    }
}
