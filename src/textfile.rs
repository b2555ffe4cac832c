//! Text files the user keeps (tables, shape files): read as UTF-8 with a clear error naming
//! the line of the first bad byte, a leading byte-order mark dropped, and line numbers for
//! error messages computed from byte offsets. The csv reader's own line count skips comment
//! and blank lines and runs one short in CRLF files, so messages from it named wrong lines.

use crate::error::{Error, Result};
use std::path::Path;

/// The file's text; `what` names it in errors ("table", "shape file").
pub fn read(path: &Path, what: &str) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, &format!("read {what}"), e))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = LineIndex::new(&String::from_utf8_lossy(&e.as_bytes()[..at])).line(at);
        Error::at(path, line, None, format!("not UTF-8 text (byte {at}): save the {what} as UTF-8"))
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// Whether a file a command is about to add to is not there yet: no file, or an empty one
/// (as `mktemp` or `touch` leave it). Anything else is read, so a file of another kind is
/// an error naming it rather than overwritten.
pub fn absent_or_empty(path: &Path) -> bool {
    match std::fs::metadata(path) {
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        Ok(m) => m.is_file() && m.len() == 0,
    }
}

/// Byte offset to 1-based line number.
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        LineIndex { starts: std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect() }
    }

    /// The line holding byte `offset` (the last line for offsets past the end).
    pub fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset)
    }

    /// The line of the csv record whose position is `offset` in `text`. The reader puts a
    /// record's position before the line ends, blank lines and `#` comment lines it skips to
    /// reach it (in a CRLF file, at the `\n` of the line before), so those are skipped here.
    pub fn record_line(&self, text: &str, mut offset: usize) -> usize {
        let b = text.as_bytes();
        loop {
            while offset < b.len() && (b[offset] == b'\r' || b[offset] == b'\n') {
                offset += 1;
            }
            let line_start = offset == 0 || b.get(offset - 1) == Some(&b'\n');
            if b.get(offset) == Some(&b'#') && line_start {
                offset = b[offset..].iter().position(|&c| c == b'\n').map_or(b.len(), |i| offset + i + 1);
                continue;
            }
            return self.line(offset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_count_every_newline_whatever_the_line_holds() {
        let text = "a\r\n# c\r\n\r\nb,c\nd";
        let ix = LineIndex::new(text);
        assert_eq!([0, 2, 3, 8, 10, 14, 15].map(|o| ix.line(o)), [1, 1, 2, 3, 4, 5, 5]);
    }

    #[test]
    fn a_record_position_before_skipped_lines_names_the_record_line() {
        let text = "h\r\n# c\r\n\r\nrow\r\n";
        let ix = LineIndex::new(text);
        // The reader's position of the row: at the \n ending line 1.
        assert_eq!(ix.record_line(text, 2), 4);
        assert_eq!(ix.record_line(text, 0), 1);
        let text = "# a\n# b\nh\n";
        assert_eq!(LineIndex::new(text).record_line(text, 0), 3);
    }

    #[test]
    fn bad_bytes_are_an_input_error_naming_their_line_and_a_bom_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, b"# ok\n# caf\xe9\nx\n").unwrap();
        let e = read(&p, "table").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("t.csv:2:") && e.to_string().contains("not UTF-8"), "{e}");
        std::fs::write(&p, "\u{feff}#@format 1\n").unwrap();
        assert_eq!(read(&p, "table").unwrap(), "#@format 1\n");
    }
}
