//! [`Secret`]: a credential's value in the supervisor's memory.
//!
//! It cannot be printed (`Debug` shows `Secret(***)`, there is no `Display` and no
//! `Serialize`), and its bytes are overwritten when it is dropped (`zeroize`), so a value
//! replaced by rotation does not linger in freed memory.

use zeroize::Zeroizing;

/// A secret's value. Read it only to put it into a request ([`Secret::expose`]).
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps `value`, trimmed of surrounding whitespace (a trailing newline of a file or a
    /// command's output is never part of a token). The untrimmed input is zeroed too.
    pub fn new(value: String) -> Secret {
        let value = Zeroizing::new(value);
        Secret(Zeroizing::new(value.trim().to_string()))
    }

    /// The value: only for building the header that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty (a source that gave nothing is refused, never injected).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed_and_trimmed() {
        let s = Secret::new("  tok-123\n".into());
        assert_eq!(s.expose(), "tok-123");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert!(Secret::new("\n".into()).is_empty());
    }
}
