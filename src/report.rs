//! Plain-text tables for the terminal: right-aligned numbers, left-aligned text.

pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let cols = headers.len();
    let mut width: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(cols) {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let numeric = |s: &str| {
        let t = s.trim_end_matches(['x', '%']);
        !t.is_empty() && t.parse::<f64>().is_ok()
    };
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String, header: bool| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = width[i] - c.chars().count();
                if !header && numeric(c) {
                    format!("{}{c}", " ".repeat(pad))
                } else {
                    format!("{c}{}", " ".repeat(pad))
                }
            })
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(headers.to_vec(), &mut out, true);
    let rule: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
    line(rule.iter().map(|s| s.as_str()).collect(), &mut out, true);
    for r in rows {
        line(r.iter().map(|s| s.as_str()).collect(), &mut out, false);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn aligns_columns() {
        let s = super::render(&["name", "us"], &[vec!["a".into(), "1.5".into()], vec!["long".into(), "10.25".into()]]);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "name  us");
        assert_eq!(lines[2], "a       1.5");
        assert_eq!(lines[3], "long  10.25");
    }
}
