//! Bench report formats for people and CI systems: Markdown (CI job summaries), CSV,
//! JUnit XML (one test case per shape), and SVG plots (per-shape speedup bars, and a
//! roofline chart of achieved throughput against arithmetic intensity, default and tuned).
//! JSON is `BenchReport` itself (serde).

use crate::bench::{BenchReport, ShapeBench};
use crate::gate::{Finding, Metric};
use crate::tune::stats::geomean;
use plotters::prelude::*;

fn fmt_us(us: f64) -> String {
    if us >= 100.0 {
        format!("{us:.0}")
    } else if us >= 10.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.2}")
    }
}

/// A short, stable label for a kernel id (cuBLASLt blobs cut).
pub fn short_kernel(id: &str) -> String {
    match id.rsplit_once(':') {
        Some((head, blob)) if blob.len() > 32 && blob.bytes().all(|b| b.is_ascii_hexdigit()) => head.to_string(),
        _ => id.to_string(),
    }
}

type Group = (&'static str, fn(&ShapeBench) -> bool);
pub const GROUPS: [Group; 3] = [
    ("M <= 32 (decode)", |s| s.m <= 32),
    ("32 < M < 512", |s| s.m > 32 && s.m < 512),
    ("M >= 512 (prefill)", |s| s.m >= 512),
];

/// The report in markdown; with a baseline, each shape's change against it in what the
/// gate compared (`metric`): the tuned time, or the speedup (+ = worse either way).
pub fn markdown(r: &BenchReport, findings: &[Finding], baseline: Option<&BenchReport>, metric: Metric) -> String {
    let mut s = String::new();
    let verdict = if findings.is_empty() { "passed" } else { "FAILED" };
    s.push_str(&format!("## gemmtune bench: {verdict}\n\n"));
    s.push_str(&format!(
        "{} `{}` ({} shapes), gemmtune {}, {}. Limits measured in this run: {}.{}\n\n",
        r.backend,
        r.device,
        r.shapes.len(),
        r.gemmtune,
        r.created,
        r.limits.describe(),
        if r.pdl { " Our kernels launched chained (`--pdl`), the library default unchained." } else { "" }
    ));
    if r.hot {
        s.push_str("Timed **hot** (`--hot`): one operand set, weights cache-resident between calls; a diagnostic, not the cold roofline a table is tuned for.\n\n");
    }
    s.push_str("| group | shapes | tuned vs default (geomean) | min | tuned % of roofline | default % of roofline |\n|---|---:|---:|---:|---:|---:|\n");
    for (name, sel) in GROUPS {
        let g: Vec<&ShapeBench> = r.shapes.iter().filter(|x| sel(x)).collect();
        if g.is_empty() {
            continue;
        }
        s.push_str(&format!(
            "| {name} | {} | {:.3}x | {:.3}x | {:.1}% | {:.1}% |\n",
            g.len(),
            geomean(g.iter().map(|x| x.speedup)),
            g.iter().map(|x| x.speedup).fold(f64::MAX, f64::min),
            geomean(g.iter().map(|x| x.roofline_pct)),
            geomean(g.iter().map(|x| x.default_roofline_pct()))
        ));
    }
    if !findings.is_empty() {
        s.push_str("\n### Gate failures\n\n| shape | kind | detail |\n|---|---|---|\n");
        for f in findings {
            s.push_str(&format!("| {} | {} | {} |\n", f.problem, f.kind, f.detail));
        }
    }
    s.push_str("\n### Shapes\n\n| shape | tuned kernel | tuned µs | default µs | speedup (interval) | % roofline |");
    if baseline.is_some() {
        s.push_str(match metric {
            Metric::Time => " vs baseline (time) |",
            Metric::Speedup => " vs baseline (speedup) |",
        });
    }
    s.push_str("\n|---|---|---:|---:|---:|---:|");
    if baseline.is_some() {
        s.push_str("---:|");
    }
    s.push('\n');
    for x in &r.shapes {
        s.push_str(&format!(
            "| {} | `{}` | {} | {} | {:.3}x ({:.2}..{:.2}) | {:.1} |",
            x.problem,
            short_kernel(&x.kernels[0].kernel),
            fmt_us(x.kernels[0].median_us),
            fmt_us(x.default_us()),
            x.speedup,
            x.speedup_lo,
            x.speedup_hi,
            x.roofline_pct
        ));
        if let Some(b) = baseline {
            match b.shapes.iter().find(|y| y.problem == x.problem) {
                Some(y) => s.push_str(&format!(" {:+.1}% |", crate::gate::change(metric, x, y) * 100.0)),
                None => s.push_str(" new |"),
            }
        }
        s.push('\n');
    }
    s
}

pub fn csv(r: &BenchReport) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "problem", "dtype", "layout", "m", "n", "k", "batch", "phase", "source", "tuned_kernel", "tuned_us", "tuned_noise_pct",
        "default_kernel", "default_us", "default_noise_pct", "speedup", "speedup_lo", "speedup_hi", "roofline_pct", "bound",
    ])
    .expect("memory");
    for x in &r.shapes {
        let (t, d) = (&x.kernels[0], x.default_timing().expect("a report's shapes have timings"));
        w.write_record([
            x.problem.clone(),
            x.dtype.clone(),
            x.layout.clone(),
            x.m.to_string(),
            x.n.to_string(),
            x.k.to_string(),
            x.batch.to_string(),
            x.phase.clone(),
            x.source.clone(),
            t.kernel.clone(),
            format!("{:.3}", t.median_us),
            format!("{:.2}", t.noise_pct),
            d.kernel.clone(),
            format!("{:.3}", d.median_us),
            format!("{:.2}", d.noise_pct),
            format!("{:.4}", x.speedup),
            format!("{:.4}", x.speedup_lo),
            format!("{:.4}", x.speedup_hi),
            format!("{:.2}", x.roofline_pct),
            x.bound.clone(),
        ])
        .expect("memory");
    }
    String::from_utf8(w.into_inner().expect("memory")).expect("utf-8")
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

/// JUnit XML: one `<testcase>` per shape (classname = the backend), failing when the gate
/// found something for it.
pub fn junit(r: &BenchReport, findings: &[Finding]) -> String {
    let total_s: f64 = r.shapes.iter().map(|x| x.kernels[0].median_us * 1e-6).sum();
    // Test cases that fail, not findings: a shape both stale and regressed is one failure.
    let failing = crate::gate::failing_shapes(findings);
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    s.push_str(&format!(
        "<testsuites name=\"gemmtune bench\" tests=\"{}\" failures=\"{}\" time=\"{total_s:.6}\">\n",
        r.shapes.len(),
        failing
    ));
    s.push_str(&format!(
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"0\" time=\"{total_s:.6}\" timestamp=\"{}\">\n",
        xml_escape(&format!("gemmtune.bench.{}", r.backend)),
        r.shapes.len(),
        failing,
        xml_escape(&r.created)
    ));
    s.push_str(&format!(
        "    <properties><property name=\"device\" value=\"{}\"/><property name=\"gemmtune\" value=\"{}\"/></properties>\n",
        xml_escape(&r.device),
        xml_escape(&r.gemmtune)
    ));
    for x in &r.shapes {
        s.push_str(&format!(
            "    <testcase classname=\"gemmtune.bench.{}\" name=\"{}\" time=\"{:.6}\">",
            xml_escape(&r.backend),
            xml_escape(&x.problem),
            x.kernels[0].median_us * 1e-6
        ));
        let mine: Vec<&Finding> = findings.iter().filter(|f| f.problem == x.problem).collect();
        if mine.is_empty() {
            s.push_str(&format!(
                "<system-out>{}</system-out>",
                xml_escape(&format!("{} {:.3}x vs default, {:.1}% of roofline", x.kernels[0].kernel, x.speedup, x.roofline_pct))
            ));
        }
        for f in mine {
            s.push_str(&format!(
                "\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    ",
                xml_escape(&format!("{} {:.1}% (allowed {:.1}%)", f.kind, f.change_pct, f.allowed_pct)),
                xml_escape(&f.kind),
                xml_escape(&f.detail)
            ));
        }
        s.push_str("</testcase>\n");
    }
    s.push_str("  </testsuite>\n</testsuites>\n");
    s
}

fn plot_err<E: std::fmt::Debug>(e: E) -> crate::error::Error {
    crate::error::Error::runtime(format!("plot: {e:?}"))
}

/// Per-shape speedup bars (tuned over default), 1.0 marked.
pub fn svg_speedup(r: &BenchReport) -> crate::error::Result<String> {
    let mut out = String::new();
    {
        let n = r.shapes.len().max(1);
        let width = (160 + 22 * n).clamp(640, 2400) as u32;
        let root = SVGBackend::with_string(&mut out, (width, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let top = r.shapes.iter().map(|x| x.speedup_hi.max(x.speedup)).fold(1.1, f64::max) * 1.1;
        let mut c = ChartBuilder::on(&root)
            .caption(format!("tuned vs default: {} ({})", r.device, r.backend), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..n as f64, 0f64..top)
            .map_err(plot_err)?;
        c.configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .x_desc("shapes (in report order; M grows within each weight)")
            .y_desc("speedup (x)")
            .draw()
            .map_err(plot_err)?;
        c.draw_series(r.shapes.iter().enumerate().map(|(i, x)| {
            let color = if x.speedup_hi < 1.0 { RED } else if x.speedup_lo > 1.0 { GREEN } else { BLUE };
            Rectangle::new([(i as f64 + 0.1, 0.0), (i as f64 + 0.9, x.speedup)], color.mix(0.8).filled())
        }))
        .map_err(plot_err)?
        .label("speedup")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], GREEN.filled()));
        c.draw_series(std::iter::once(PathElement::new(vec![(0.0, 1.0), (n as f64, 1.0)], BLACK)))
            .map_err(plot_err)?
            .label("default = 1.0")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 10, y)], BLACK));
        c.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(out)
}

/// Roofline chart: achieved FLOP/s against arithmetic intensity (FLOP per byte), the
/// measured roofs, and a point per shape for the default and the tuned kernel.
pub fn svg_roofline(r: &BenchReport) -> crate::error::Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (760, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let pts: Vec<(f64, f64, f64)> = r
            .shapes
            .iter()
            .map(|x| {
                let flops = 2.0 * (x.batch * x.m * x.n * x.k) as f64;
                // The bytes the roofline counts (packed weights at their size).
                let bytes = x.to_problem().map_or(f64::NAN, |p| p.min_bytes());
                (flops / bytes, flops / (x.kernels[0].median_us * 1e-6) / 1e9, flops / (x.default_us() * 1e-6) / 1e9)
            })
            .collect();
        let ai_max = pts.iter().map(|p| p.0).fold(1.0, f64::max) * 2.0;
        let ai_min = pts.iter().map(|p| p.0).fold(f64::MAX, f64::min).min(1.0) / 2.0;
        let peak = r.limits.peak_flops / 1e9;
        let (y_min, y_max) = (pts.iter().map(|p| p.2.min(p.1)).fold(peak, f64::min) / 2.0, peak * 2.0);
        let mut c = ChartBuilder::on(&root)
            .caption(format!("roofline: {} ({})", r.device, r.backend), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d((ai_min..ai_max).log_scale(), (y_min.max(1e-3)..y_max).log_scale())
            .map_err(plot_err)?;
        c.configure_mesh().x_desc("arithmetic intensity (FLOP/byte)").y_desc("GFLOP/s").draw().map_err(plot_err)?;
        let bw = r.limits.bandwidth / 1e9;
        let roof: Vec<(f64, f64)> = (0..=200)
            .map(|i| {
                let ai = ai_min * (ai_max / ai_min).powf(i as f64 / 200.0);
                (ai, (ai * bw).min(peak))
            })
            .collect();
        c.draw_series(LineSeries::new(roof, BLACK.stroke_width(2)))
            .map_err(plot_err)?
            .label("roofline (measured peak, copy bandwidth)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], BLACK));
        c.draw_series(pts.iter().map(|p| Circle::new((p.0, p.2), 4, RED.filled())))
            .map_err(plot_err)?
            .label("default")
            .legend(|(x, y)| Circle::new((x + 6, y), 4, RED.filled()));
        c.draw_series(pts.iter().map(|p| Circle::new((p.0, p.1), 4, BLUE.filled())))
            .map_err(plot_err)?
            .label("tuned")
            .legend(|(x, y)| Circle::new((x + 6, y), 4, BLUE.filled()));
        c.configure_series_labels().position(SeriesLabelPosition::LowerRight).background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(out)
}
