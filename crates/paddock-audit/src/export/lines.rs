//! The log's lines as stored, for the file formats: record types this version does not
//! know (written by a newer paddock) are exported too, not refused.

use std::path::Path;
use std::time::SystemTime;

use serde::Deserialize;

use super::error::ExportError;
use crate::reader::{Line, LineReader};
use crate::time::parse_ts;

#[derive(Deserialize)]
struct Ts {
    ts: Option<String>,
}

/// The complete lines of the log at `path` (a torn last line is left out), without
/// those whose `ts` is before `since`.
pub fn log_lines(path: &Path, since: Option<SystemTime>) -> Result<Vec<Vec<u8>>, ExportError> {
    let mut reader = LineReader::open(path).map_err(|e| ExportError::Log { reason: e.to_string() })?;
    let mut out = Vec::new();
    while let Some(line) = reader.next_line().map_err(|e| ExportError::Log { reason: e.to_string() })? {
        let Line::Complete { bytes, .. } = line else { continue };
        if let Some(cutoff) = since {
            let ts = serde_json::from_slice::<Ts>(&bytes).ok().and_then(|t| t.ts).and_then(|t| parse_ts(&t));
            if ts.is_some_and(|t| t < cutoff) {
                continue;
            }
        }
        out.push(bytes);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_types_and_bad_lines_are_kept_torn_tail_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.jsonl");
        std::fs::write(&p, "{\"seq\":1,\"ts\":\"2020-01-01T00:00:00Z\",\"event\":\"x\"}\n{\"seq\":2,\"event\":\"future.kind\"}\nnot json\n{\"torn").unwrap();
        assert_eq!(log_lines(&p, None).unwrap().len(), 3);
        let since = parse_ts("2021-01-01T00:00:00Z");
        assert_eq!(log_lines(&p, since).unwrap().len(), 2, "only the old record is left out");
    }
}
