//! Shape files (`shapes/*.csv`): the GEMM problems a model runs, with metadata.
//!
//! ```text
//! # any number of comment lines (the generating command, the model, notes)
//! dtype,layout,m,n,k,batch,phase,model,layer,calls,weight
//! bf16,TN,1,1536,576,1,decode,smollm2-135m,gate+up,60,60
//! ```
//!
//! Required columns: `dtype, m, n, k`. Optional: `layout` (default `TN`), `batch` (1),
//! `phase` (`prefill|decode|other`), `model`, `layer`, `calls` (calls per forward
//! step, default 1) and `weight` (the row's share of time; default = calls). Column order
//! is free; unknown columns are an error so typos do not go unnoticed. Rows with the
//! same problem key are merged: calls and weights add up, layer names are joined.

use crate::atomic::write_atomic;
use crate::error::{Error, Result};
use crate::problem::{parse_types, Layout, Phase, Problem};
use std::collections::BTreeMap;
use std::path::Path;

pub const COLUMNS: [&str; 11] =
    ["dtype", "layout", "m", "n", "k", "batch", "phase", "model", "layer", "calls", "weight"];

#[derive(Clone, Debug, PartialEq)]
pub struct ShapeEntry {
    pub problem: Problem,
    pub phase: Phase,
    pub model: String,
    pub layer: String,
    /// Calls per forward step (fractional for MoE experts: expected tokens).
    pub calls: f64,
    /// Share of time (or calls when no estimate exists); `tune` works in this order.
    pub weight: f64,
}

impl ShapeEntry {
    pub fn new(problem: Problem) -> ShapeEntry {
        ShapeEntry {
            problem,
            phase: if problem.m <= 16 { Phase::Decode } else { Phase::Prefill },
            model: String::new(),
            layer: String::new(),
            calls: 1.0,
            weight: 1.0,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShapeFile {
    /// Comment lines (without the leading `#`), kept on rewrite.
    pub comments: Vec<String>,
    pub entries: Vec<ShapeEntry>,
}

impl ShapeFile {
    /// The shape file at `path` a command is about to add to, None when there is none yet
    /// (`textfile::absent_or_empty`); a file that is something else is an error naming it.
    pub fn load_existing(path: &Path) -> Result<Option<ShapeFile>> {
        if crate::textfile::absent_or_empty(path) {
            return Ok(None);
        }
        ShapeFile::load(path).map(Some)
    }

    pub fn load(path: &Path) -> Result<ShapeFile> {
        let text = crate::textfile::read(path, "shape file")?;
        ShapeFile::parse(&text, path)
    }

    /// Parses shape-file text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<ShapeFile> {
        let lines = crate::textfile::LineIndex::new(text);
        let line_of = |p: Option<&csv::Position>| p.map_or(1, |p| lines.record_line(text, p.byte() as usize));
        let mut comments = Vec::new();
        // Comments start in the first column, as the csv reader below skips them.
        for line in text.lines() {
            match line.strip_prefix('#') {
                Some(c) => comments.push(c.trim().to_string()),
                None if line.trim().is_empty() => continue,
                None => break,
            }
        }
        let mut rdr = csv::ReaderBuilder::new()
            .comment(Some(b'#'))
            .trim(csv::Trim::All)
            .flexible(true)
            .from_reader(text.as_bytes());
        let headers = rdr
            .headers()
            .map_err(|e| Error::at(path, line_of(e.position()), None, format!("unreadable header: {e}")))?
            .clone();
        let header_line = line_of(headers.position());
        if headers.is_empty() {
            return Err(Error::input(format!(
                "{}: no header line (a shape file starts with a header such as 'dtype,m,n,k', after any comments)",
                path.display()
            )));
        }
        let mut col = BTreeMap::new();
        for (i, h) in headers.iter().enumerate() {
            let h = h.to_ascii_lowercase();
            if !COLUMNS.contains(&h.as_str()) {
                return Err(Error::at(
                    path,
                    header_line,
                    Some(&h),
                    format!("unknown column (known: {})", COLUMNS.join(", ")),
                ));
            }
            if col.insert(h.clone(), i).is_some() {
                return Err(Error::at(path, header_line, Some(&h), "column appears twice"));
            }
        }
        for req in ["dtype", "m", "n", "k"] {
            if !col.contains_key(req) {
                return Err(Error::at(
                    path,
                    header_line,
                    Some(req),
                    "required column missing from the header (need dtype, m, n, k)",
                ));
            }
        }
        let mut entries: Vec<ShapeEntry> = Vec::new();
        let mut index: BTreeMap<Problem, usize> = BTreeMap::new();
        for rec in rdr.records() {
            let rec = rec.map_err(|e| Error::at(path, line_of(e.position()), None, format!("unreadable row: {e}")))?;
            let line = line_of(rec.position());
            if rec.len() != headers.len() {
                return Err(Error::at(
                    path,
                    line,
                    None,
                    format!("row has {} fields, the header has {}", rec.len(), headers.len()),
                ));
            }
            let get = |name: &str| col.get(name).map(|&i| rec.get(i).unwrap_or(""));
            let bad = |name: &str, msg: String| Error::at(path, line, Some(name), msg);
            let dim = |name: &str, default: Option<usize>| -> Result<usize> {
                match (get(name), default) {
                    (None, Some(d)) | (Some(""), Some(d)) => Ok(d),
                    (Some(v), _) => v.parse::<usize>().map_err(|_| {
                        bad(name, format!("'{v}' is not a positive whole number"))
                    }),
                    (None, None) => unreachable!("required columns checked above"),
                }
            };
            let (dtype, wformat) = parse_types(get("dtype").unwrap()).map_err(|e| bad("dtype", e))?;
            let layout: Layout = match get("layout") {
                Some(v) if !v.is_empty() => v.parse().map_err(|e| bad("layout", e))?,
                _ => Layout::TN,
            };
            let (m, n, k) = (dim("m", None)?, dim("n", None)?, dim("k", None)?);
            let batch = dim("batch", Some(1))?;
            let problem = Problem::new(dtype, layout, m, n, k, batch).and_then(|p| p.with_weights(wformat)).map_err(|e| Error::at(path, line, Problem::check_field(&e), &e))?;
            let mut entry = ShapeEntry::new(problem);
            if let Some(v) = get("phase") {
                entry.phase = v.parse().map_err(|e| bad("phase", e))?;
            }
            entry.model = get("model").unwrap_or("").to_string();
            entry.layer = get("layer").unwrap_or("").to_string();
            let num = |name: &str, default: f64| -> Result<f64> {
                match get(name) {
                    None | Some("") => Ok(default),
                    Some(v) => match v.parse::<f64>() {
                        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
                        _ => Err(bad(name, format!("'{v}' is not a finite number >= 0"))),
                    },
                }
            };
            entry.calls = num("calls", 1.0)?;
            entry.weight = num("weight", entry.calls)?;
            match index.get(&problem) {
                Some(&i) => merge_into(&mut entries[i], &entry),
                None => {
                    index.insert(problem, entries.len());
                    entries.push(entry);
                }
            }
        }
        Ok(ShapeFile { comments, entries })
    }

    /// Adds an entry, merging with an existing one of the same problem key.
    pub fn add(&mut self, entry: ShapeEntry) {
        match self.entries.iter_mut().find(|e| e.problem == entry.problem) {
            Some(e) => merge_into(e, &entry),
            None => self.entries.push(entry),
        }
    }

    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        for c in &self.comments {
            out.push_str(&format!("# {c}\n"));
        }
        out.push_str(&COLUMNS.join(","));
        out.push('\n');
        let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
        for e in &self.entries {
            let p = &e.problem;
            w.write_record([
                p.types(),
                p.layout.name().to_string(),
                p.m.to_string(),
                p.n.to_string(),
                p.k.to_string(),
                p.batch.to_string(),
                e.phase.name().to_string(),
                e.model.clone(),
                e.layer.clone(),
                fmt_num(e.calls),
                fmt_num(e.weight),
            ])
            .expect("writing to memory");
        }
        out.push_str(&String::from_utf8(w.into_inner().expect("memory")).expect("utf-8"));
        out
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let text = self.to_csv();
        write_atomic(path, |w| w.write_all(text.as_bytes()))
    }
}

fn merge_into(into: &mut ShapeEntry, other: &ShapeEntry) {
    // Saturating: a sum past f64's range would be written as 'inf', which no reader
    // (this one included) takes back.
    into.calls = (into.calls + other.calls).min(f64::MAX);
    into.weight = (into.weight + other.weight).min(f64::MAX);
    for name in other.layer.split('+').filter(|s| !s.is_empty()) {
        if !into.layer.split('+').any(|l| l == name) {
            if !into.layer.is_empty() {
                into.layer.push('+');
            }
            into.layer.push_str(name);
        }
    }
    if into.model.is_empty() {
        into.model = other.model.clone();
    }
    if into.phase != other.phase {
        into.phase = Phase::Other;
    }
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_of_comments_only_says_it_has_no_header() {
        for text in ["# hi\n", "", "# a\n\n# b\n"] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains("no header line"), "{text:?}: {e}");
        }
    }

    /// Counts adding up past f64's range stay the largest finite count: the file they
    /// are written to reads back (it held 'inf', which its reader refuses).
    #[test]
    fn huge_counts_saturate_and_the_file_reads_back() {
        let p = crate::problem::Problem::linear(crate::problem::DType::F32, 1, 64, 64).unwrap();
        let mut f = ShapeFile { comments: Vec::new(), entries: Vec::new() };
        for _ in 0..2 {
            let mut e = ShapeEntry::new(p);
            (e.calls, e.weight) = (1e308, 1e308);
            f.add(e);
        }
        assert_eq!(f.entries[0].calls, f64::MAX);
        let back = ShapeFile::parse(&f.to_csv(), std::path::Path::new("s.csv")).unwrap();
        assert_eq!(back.entries[0].calls, f64::MAX);
    }
    use crate::problem::DType;

    fn parse(text: &str) -> Result<ShapeFile> {
        ShapeFile::parse(text, Path::new("s.csv"))
    }

    #[test]
    fn round_trip() {
        let text = "# made by hand\ndtype,layout,m,n,k,batch,phase,model,layer,calls,weight\n\
                    bf16,TN,1,1536,576,1,decode,smollm2,gate,30,30\n\
                    f32,NN,512,576,1536,2,prefill,smollm2,down,30,12.5\n";
        let f = parse(text).unwrap();
        assert_eq!(f.comments, vec!["made by hand"]);
        assert_eq!(f.entries.len(), 2);
        assert_eq!(f.entries[1].problem.layout, Layout::NN);
        assert_eq!(f.entries[1].problem.batch, 2);
        assert_eq!(f.entries[1].weight, 12.5);
        let again = parse(&f.to_csv()).unwrap();
        assert_eq!(again, f);
    }

    #[test]
    fn minimal_columns_and_defaults() {
        let f = parse("m,n,k,dtype\n4,8,16,f16\n").unwrap();
        let e = &f.entries[0];
        assert_eq!(e.problem, Problem::linear(DType::F16, 4, 8, 16).unwrap());
        assert_eq!((e.calls, e.weight, e.phase), (1.0, 1.0, Phase::Decode));
    }

    #[test]
    fn duplicates_merge_with_counts_summed() {
        let f = parse(
            "dtype,m,n,k,layer,calls\nf32,1,576,576,q,30\nf32,1,576,576,o,30\nf32,1,576,576,q,1\n",
        )
        .unwrap();
        assert_eq!(f.entries.len(), 1);
        assert_eq!(f.entries[0].calls, 61.0);
        assert_eq!(f.entries[0].layer, "q+o");
    }

    #[test]
    fn errors_name_line_and_field() {
        let cases = [
            ("dtype,m,n,k\nf32,1,2,3\nf8,1,2,3\n", "s.csv:3: field 'dtype'"),
            ("dtype,m,n,k\nf32,0,2,3\n", "s.csv:2: field 'm'"),
            ("dtype,m,n,k\nf32,1,-2,3\n", "s.csv:2: field 'n'"),
            ("dtype,m,n,k\nf32,1,2,99999999999\n", "s.csv:2: field 'k'"),
            ("dtype,m,n,k\nf32,1,2\n", "s.csv:2: row has 3 fields"),
            ("dtype,m,n,kk\nf32,1,2,3\n", "field 'kk': unknown column"),
            ("dtype,m,n\nf32,1,2\n", "field 'k': required column"),
            ("dtype,m,n,k,calls\nf32,1,2,3,NaN\n", "field 'calls'"),
            ("# c\ndtype,m,n,k,layout\nf32,1,2,3,XX\n", "s.csv:3: field 'layout'"),
            // Lines the csv reader skips still count; so do CRLF line ends.
            ("dtype,m,n,k\nf32,1,64,64\n# note\n\nf32,2,64,x\n", "s.csv:5: field 'k'"),
            ("dtype,m,n,k\r\nf32,1,64,x\r\n", "s.csv:2: field 'k'"),
            ("# c1\n# c2\ndtype,m,n,kk\nf32,1,2,3\n", "s.csv:3: field 'kk'"),
            ("dtype,dtype,m,n,k\nf32,f32,1,64,64\n", "s.csv:1: field 'dtype': column appears twice"),
            ("dtype,m,n,k,layout\nf32/q4_1,1,64,64,NN\n", "s.csv:2: field 'layout'"),
        ];
        for (text, want) in cases {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "for {text:?}: got '{e}', want '{want}'");
        }
    }
}
