//! Escaping text an agent chose before a person reads it: [`escape`].
//!
//! Argv, paths, hosts, URLs and reasons that quote them come from the agent. Printed raw
//! on a terminal, `x\x1b[1A\x1b[2K\r...` erases lines and draws a forged section; a
//! right-to-left override reorders what follows; a zero-width character hides a
//! difference. Every human-facing rendering in paddock (the review, `run`'s messages,
//! `check`, `-v` lines) passes such text through this one function. JSON output needs no
//! more than JSON's own escaping.
//!
//! What is escaped, and how it shows:
//! - C0 controls and DEL: `\t`, `\n`, `\r`, else `\x1b`-style (`\x00`, `\x7f`);
//! - C1 controls (U+0080–U+009F, e.g. the one-byte CSI U+009B): `\u{9b}`;
//! - bidi embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069), the marks
//!   LRM, RLM and ALM, line and paragraph separators, every other format character and
//!   every default-ignorable code point (soft hyphen, U+200B–U+200D, U+2060–U+2064, BOM,
//!   variation selectors, tag characters, fillers): `\u{202e}`;
//! - the backslash itself: `\\`, so an escape shown is never ambiguous with text that
//!   spells one.
//!
//! ```
//! use paddock_audit::escape;
//! assert_eq!(escape("x\x1b[1A\r"), r"x\x1b[1A\r");
//! assert_eq!(escape("a\u{202e}b"), r"a\u{202e}b");
//! assert_eq!(escape("git status"), "git status");
//! ```

use std::borrow::Cow;
use std::fmt::{self, Write};

/// `text` with every control, bidi and invisible format character escaped (see the
/// module doc); borrowed when there is nothing to escape.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        push_escaped(&mut out, c).expect("writing to a String cannot fail");
    }
    Cow::Owned(out)
}

/// A `Display` of `text` escaped as by [`escape`], without allocating.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            push_escaped(f, c)?;
        }
        Ok(())
    }
}

fn push_escaped(out: &mut impl Write, c: char) -> fmt::Result {
    if !needs_escape(c) {
        return out.write_char(c);
    }
    match c {
        '\\' => out.write_str(r"\\"),
        '\t' => out.write_str(r"\t"),
        '\n' => out.write_str(r"\n"),
        '\r' => out.write_str(r"\r"),
        c if (c as u32) < 0x80 => write!(out, r"\x{:02x}", c as u32),
        c => write!(out, r"\u{{{:x}}}", c as u32),
    }
}

/// True for what [`escape`] rewrites: controls (general categories Cc), the backslash,
/// every format character (Cf), line and paragraph separators (Zl, Zp), and every
/// Default_Ignorable_Code_Point (Unicode 16's `DerivedCoreProperties.txt`, unassigned ones
/// included: a later font may draw them as nothing), so nothing that shows as nothing, or
/// reorders what follows, reaches a person unseen.
pub fn needs_escape(c: char) -> bool {
    let u = c as u32;
    matches!(u,
        0x00..=0x1f | 0x5c | 0x7f..=0x9f // C0, backslash, DEL, C1
        | 0xad // soft hyphen
        | 0x34f // combining grapheme joiner
        | 0x600..=0x605 | 0x6dd | 0x70f | 0x890..=0x891 | 0x8e2 // Arabic and Syriac format marks
        | 0x61c // Arabic letter mark
        | 0x115f | 0x1160 | 0x3164 | 0xffa0 // Hangul fillers (render as blank)
        | 0x17b4 | 0x17b5 // Khmer inherent vowels
        | 0x180b..=0x180f // Mongolian free variation selectors, vowel separator
        | 0x200b..=0x200f // zero-width space, non-joiner, joiner; LRM, RLM
        | 0x2028..=0x202e // line and paragraph separators; bidi embeddings and overrides
        | 0x2060..=0x206f // word joiner, invisible operators; bidi isolates; deprecated formats
        | 0xfe00..=0xfe0f // variation selectors
        | 0xfeff // zero-width no-break space (BOM)
        | 0xfff0..=0xfffb // unassigned ignorables; interlinear annotation
        | 0x110bd | 0x110cd // Kaithi number signs
        | 0x13430..=0x1343f // Egyptian hieroglyph format controls
        | 0x1bca0..=0x1bca3 // shorthand format controls
        | 0x1d173..=0x1d17a // musical formatting
        | 0xe0000..=0xe0fff // tags, variation selectors supplement, unassigned ignorables
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_lines_are_shown_not_played() {
        let forged = "x\x1b[1A\x1b[2K\r\x1b[32m  (nothing denied)";
        assert_eq!(escape(forged), r"x\x1b[1A\x1b[2K\r\x1b[32m  (nothing denied)");
        assert_eq!(escape("\x1b]0;title\x07"), r"\x1b]0;title\x07");
        assert_eq!(escape("a\u{9b}2Jb"), r"a\u{9b}2Jb");
        assert_eq!(escape("a\0b\x7f"), r"a\x00b\x7f");
        assert_eq!(escape("evil\u{202e}txt.exe"), r"evil\u{202e}txt.exe");
        assert_eq!(escape("\u{2066}x\u{2069}\u{200b}\u{feff}"), r"\u{2066}x\u{2069}\u{200b}\u{feff}");
        assert_eq!(escape(r"C:\x1b"), r"C:\\x1b");
        assert_eq!(escape("tab\there\nnext"), r"tab\there\nnext");
    }

    #[test]
    fn every_default_ignorable_and_format_character_is_shown() {
        // Unicode 16: DerivedCoreProperties.txt, Default_Ignorable_Code_Point, and the
        // format characters (Cf) of UnicodeData.txt.
        let ranges: &[(u32, u32)] = &[
            (0xad, 0xad),
            (0x34f, 0x34f),
            (0x600, 0x605),
            (0x61c, 0x61c),
            (0x6dd, 0x6dd),
            (0x70f, 0x70f),
            (0x890, 0x891),
            (0x8e2, 0x8e2),
            (0x115f, 0x1160),
            (0x17b4, 0x17b5),
            (0x180b, 0x180f),
            (0x200b, 0x200f),
            (0x202a, 0x202e),
            (0x2060, 0x206f),
            (0x3164, 0x3164),
            (0xfe00, 0xfe0f),
            (0xfeff, 0xfeff),
            (0xffa0, 0xffa0),
            (0xfff0, 0xfffb),
            (0x110bd, 0x110bd),
            (0x110cd, 0x110cd),
            (0x13430, 0x1343f),
            (0x1bca0, 0x1bca3),
            (0x1d173, 0x1d17a),
            (0xe0000, 0xe0fff),
        ];
        for &(lo, hi) in ranges {
            for u in lo..=hi {
                let Some(c) = char::from_u32(u) else { continue };
                let text = format!("rm{c}-f");
                assert_eq!(escape(&text), format!("rm\\u{{{u:x}}}-f"), "U+{u:04X}");
            }
        }
        // What shows stays: letters, marks that combine visibly, symbols, CJK.
        for c in ['é', '\u{301}', '€', '日', '\u{1f600}', '\u{fe10}', '\u{e1000}'] {
            assert!(!needs_escape(c), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn plain_text_is_borrowed_and_unicode_kept() {
        assert!(matches!(escape("git log --oneline"), Cow::Borrowed(_)));
        assert_eq!(escape("café ünïcödé 日本"), "café ünïcödé 日本");
        assert_eq!(Escaped("a\x1bb").to_string(), r"a\x1bb");
    }
}
