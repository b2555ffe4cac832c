use super::fmt_us;
use crate::backend::Backend;
use crate::cli::DispatchArgs;
use crate::dispatch::Dispatcher;
use crate::error::{Error, Result};
use crate::problem::Problem;
use crate::random::derive_seed;
use crate::report::render;
use crate::shapes::ShapeFile;
use crate::tune::validate::{check_output, operand_seeds};
use std::time::Instant;

pub fn run<B: Backend>(b: B, a: &DispatchArgs) -> Result<()> {
    if let Some(r) = &a.record {
        crate::dispatch::check_record_path(r)?;
    }
    let mut d = Dispatcher::from_table(&a.table, b, a.strict)?;
    if let Some(r) = &a.record {
        d = d.record_unseen(r);
    }
    for w in d.warnings() {
        eprintln!("warning: {w}");
    }
    let shapes = ShapeFile::load(&a.shapes)?;
    let mut problems: Vec<Problem> = Vec::new();
    for e in &shapes.entries {
        if !problems.contains(&e.problem) {
            problems.push(e.problem);
        }
        for &m in &a.extra_m {
            let p = e.problem.with_m(m);
            p.check().map_err(|e| Error::input(format!("--extra-m {m}: {e}")))?;
            if !problems.contains(&p) {
                problems.push(p);
            }
        }
    }
    let batched = problems.iter().any(|p| p.batch > 1);
    let seed = derive_seed(std::process::id() as u64, 7);
    let mut rows = Vec::new();
    let mut failures = 0;
    for (i, p) in problems.iter().enumerate() {
        let be = d.backend();
        let (xs, ws) = operand_seeds(derive_seed(seed, i as u64));
        let mut ops = crate::tune::alloc_operands(be, p)?;
        be.fill_random(&mut ops.x, xs)?;
        be.fill_random(&mut ops.w, ws)?;
        be.fill_nan(&mut ops.y)?;
        let t = Instant::now();
        let source = d.gemm(p, &ops.x, &ops.w, &mut ops.y)?;
        let out = be.download(&ops.y)?;
        let elapsed = t.elapsed().as_secs_f64();
        let (id, _) = d.choose(p)?;
        let check = match check_output(p, &out, derive_seed(seed, i as u64)) {
            Ok(err) => format!("ok ({err:.1e})"),
            Err(why) => {
                failures += 1;
                format!("WRONG: {why}")
            }
        };
        let mut row = super::problem_cells(p, batched);
        row.extend([
            source.name().to_string(),
            id.to_string(),
            fmt_us(elapsed),
            check,
        ]);
        rows.push(row);
    }
    let mut head = super::problem_head(batched);
    head.extend(["source", "kernel", "first call us", "vs f64 reference"]);
    print!("{}", render(&head, &rows));
    println!("{}", d.coverage().summary());
    let unseen = d.coverage().unseen.len();
    d.flush_record()?;
    if let Some(r) = &a.record {
        if unseen > 0 {
            println!("{unseen} unseen shapes recorded to {}", r.display());
        } else {
            println!("no unseen shapes: {} not written", r.display());
        }
    }
    if failures > 0 {
        return Err(Error::runtime(format!("{failures} dispatched GEMMs gave wrong results")));
    }
    Ok(())
}
