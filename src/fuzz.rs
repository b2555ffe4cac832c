//! Entry points for fuzzing the readers of every file a user hands to gemmtune. The
//! `cargo fuzz` targets in `fuzz/` and the smoke test in `tests/fuzz_smoke.rs` call these:
//! any input must give `Ok` or a clear `Err`, never a panic, a hang or a huge allocation.

use std::path::Path;

/// The best-kernel table reader.
pub fn table(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(t) = crate::table::Table::parse(text, Path::new("fuzz.csv")) {
            // What parses must survive a write and a re-read unchanged.
            let again = crate::table::Table::parse(&t.to_text(), Path::new("fuzz.csv")).expect("re-read of a written table");
            assert_eq!(again.rows.len(), t.rows.len());
        }
    }
}

/// The shape-file reader.
pub fn shapes(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(f) = crate::shapes::ShapeFile::parse(text, Path::new("fuzz.csv")) {
            let again = crate::shapes::ShapeFile::parse(&f.to_csv(), Path::new("fuzz.csv")).expect("re-read of a written shape file");
            assert_eq!(again.entries.len(), f.entries.len());
        }
    }
}

/// The GGUF reader (metadata and tensor directory, every offset checked).
pub fn gguf(data: &[u8]) {
    let _ = crate::gguf::Gguf::read(std::io::Cursor::new(data), data.len() as u64, Path::new("fuzz.gguf"));
}

/// The TunableOp results and untuned readers.
pub fn tunableop(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok((t, _)) = crate::tunableop::import(text, Path::new("fuzz.csv")) {
            if let Ok(set) = crate::tunableop::export_set(&t, None) {
                let (out, left_out) = crate::tunableop::export(&t, &set, &[]);
                let again = crate::tunableop::parse_results(&out, Path::new("fuzz.csv")).expect("re-read of an export");
                assert_eq!(again.rows.len(), t.rows.len() - left_out.len());
            }
        }
        let _ = crate::tunableop::untuned_to_shapes(text, Path::new("fuzz.csv"));
    }
}
