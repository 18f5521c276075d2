//! Located errors: every problem in a policy names `FILE:LINE:COL`, says what is wrong
//! and what would be right.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a value came from: a policy file (or the embedded default) and a position in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The file, as the user named it (or `<embedded default>`).
    pub file: Arc<PathBuf>,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
}

impl Origin {
    /// The origin of byte offset `offset` in `text` (for many offsets in one text, make a
    /// [`LineIndex`] once).
    pub(crate) fn at(file: &Arc<PathBuf>, text: &str, offset: usize) -> Origin {
        LineIndex::new(file, text).at(offset)
    }
}

/// Where each line of one text starts, so that each origin in it is a binary search
/// instead of a count of the newlines before it (a policy's entries each have one).
pub(crate) struct LineIndex<'a> {
    file: &'a Arc<PathBuf>,
    text: &'a str,
    /// The byte offset of each line's start: 0, then one past each newline.
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(file: &'a Arc<PathBuf>, text: &'a str) -> LineIndex<'a> {
        let starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        LineIndex { file, text, starts }
    }

    /// The origin of byte offset `offset` (1-based line, and column in characters).
    pub(crate) fn at(&self, offset: usize) -> Origin {
        let offset = floor_char_boundary(self.text, offset.min(self.text.len()));
        // The lines starting at or before `offset`; the first always does.
        let line = self.starts.partition_point(|&s| s <= offset);
        let line_start = self.starts[line - 1];
        let col = self.text[line_start..offset].chars().count() + 1;
        Origin { file: Arc::clone(self.file), line, col }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

/// One problem in a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where it is.
    pub origin: Origin,
    /// What is wrong.
    pub message: String,
    /// What would be right.
    pub hint: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: error: {}", self.origin, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// A policy that cannot be used. Holds every problem found, in file order.
#[derive(Debug, Clone, thiserror::Error)]
pub struct PolicyError {
    /// The problems, at least one.
    pub problems: Vec<Problem>,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl PolicyError {
    pub(crate) fn one(origin: Origin, message: impl Into<String>, hint: Option<String>) -> Self {
        PolicyError { problems: vec![Problem { origin, message: message.into(), hint }] }
    }

    /// An error about a whole file (it cannot be read, ...), located at 1:1.
    pub(crate) fn file(path: &Path, message: impl Into<String>, hint: Option<String>) -> Self {
        let origin = Origin { file: Arc::new(path.to_path_buf()), line: 1, col: 1 };
        PolicyError::one(origin, message, hint)
    }
}

/// Collects problems while a policy is compiled, so that one run reports them all.
#[derive(Default)]
pub(crate) struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn push(&mut self, origin: &Origin, message: impl Into<String>, hint: impl Into<Option<String>>) {
        self.0.push(Problem { origin: origin.clone(), message: message.into(), hint: hint.into() });
    }

    pub fn into_result(self) -> Result<(), PolicyError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(PolicyError { problems: self.0 })
        }
    }
}

/// The closest candidate to `word` among `candidates`, if one is close enough to be a typo.
pub(crate) fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (if c.starts_with(word) || word.starts_with(c) { 0 } else { levenshtein(word, c) }, *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_counts_lines_and_chars() {
        let f = Arc::new(PathBuf::from("p.toml"));
        let text = "a = 1\nbé = 2\n";
        assert_eq!(Origin::at(&f, text, 0).to_string(), "p.toml:1:1");
        let off = text.find('=').unwrap();
        assert_eq!(Origin::at(&f, text, off).to_string(), "p.toml:1:3");
        let off = text.rfind('=').unwrap();
        assert_eq!(Origin::at(&f, text, off).to_string(), "p.toml:2:4");
    }

    /// The index answers as counting the newlines before each offset does: every byte
    /// offset (mid-character ones too) and beyond the end, with empty and trailing lines.
    #[test]
    fn the_line_index_answers_as_counting_does() {
        let f = Arc::new(PathBuf::from("p.toml"));
        for text in ["", "\n", "a", "a = 1\nbé = 2\n", "\n\nx\n\ny = \"ü\u{1F600}\"\nz", "é\n\n"] {
            let index = LineIndex::new(&f, text);
            for offset in 0..text.len() + 3 {
                let at = floor_char_boundary(text, offset.min(text.len()));
                let before = &text[..at];
                let line = before.matches('\n').count() + 1;
                let col = before[before.rfind('\n').map_or(0, |i| i + 1)..].chars().count() + 1;
                let o = index.at(offset);
                assert_eq!((o.line, o.col), (line, col), "{text:?} at {offset}");
            }
        }
    }

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("reed", &["read", "write", "deny"]), Some("read"));
        assert_eq!(did_you_mean("zzzzzz", &["read", "write", "deny"]), None);
    }
}
