//! Numerical validation of candidates against the f64 reference. A candidate that
//! writes NaN/Inf, leaves any output unwritten (Y is poisoned with NaN before every
//! run and then scanned in full) or exceeds the dtype's error bound is rejected.
//!
//! Operands come in draws: fresh random X and W from a seed, with the reference of a
//! sampled grid of Y computed once per draw. Candidates take turns over several draws,
//! so no two neighbours in the list see the same inputs, while the costly reference is
//! not recomputed for each of hundreds of GPU candidates.

use super::guard::guarded;
use crate::backend::{Backend, Inspection, Operands};
use crate::error::Result as GtResult;
use crate::problem::Problem;
use crate::reference::{entry_error, reference, relative_error, Sample};

/// The relative error bound for f32 problems once TF32 math is allowed (10-bit mantissa
/// inputs: ~3e-4 typical, with margin).
pub const TF32_TOLERANCE: f64 = 2e-3;

/// The error bound for `p`: the dtype's, or `TF32_TOLERANCE` for f32 problems when TF32
/// math is allowed (`tune --allow-tf32`), so TF32 candidates can pass validation.
pub fn tolerance(p: &Problem, allow_tf32: bool) -> f64 {
    if allow_tf32 && p.dtype == crate::problem::DType::F32 {
        TF32_TOLERANCE
    } else {
        p.dtype.tolerance()
    }
}

/// The seeds of X and W for a validation draw.
pub fn operand_seeds(seed: u64) -> (u64, u64) {
    (seed, seed ^ 0x5DEE_CE66_D1CE_4E5B)
}

/// One draw: its seed, the checked entries and their f64 reference values.
pub struct Draw {
    pub seed: u64,
    pub sample: Sample,
    pub indices: Vec<usize>,
    pub reference: Vec<f64>,
}

impl Draw {
    pub fn new(p: &Problem, seed: u64) -> Draw {
        let (xs, ws) = operand_seeds(seed);
        let sample = Sample::choose(p, seed);
        let reference = reference(p, &sample, xs, ws);
        let indices = sample.y_indices(p);
        Draw { seed, sample, indices, reference }
    }

    /// Fills X and W of `ops` with this draw's operands.
    pub fn fill<B: Backend>(&self, b: &B, ops: &mut Operands<B::Buffer>) -> GtResult<()> {
        let (xs, ws) = operand_seeds(self.seed);
        b.fill_random(&mut ops.x, xs)?;
        b.fill_random(&mut ops.w, ws)
    }

    /// Runs `k` on operands already filled with this draw and judges its output.
    pub fn check_run<B: Backend>(
        &self,
        b: &B,
        k: &B::Kernel,
        p: &Problem,
        ops: &mut Operands<B::Buffer>,
        tol: f64,
    ) -> Result<f64, String> {
        let (seen, guard_ok) = guarded(|| {
            b.fill_nan(&mut ops.y)?;
            b.run(k, p, &ops.x, &ops.w, &mut ops.y)?;
            b.inspect_guarded(&ops.y, &self.indices)
        })?;
        if !guard_ok {
            return Err("wrote past the end of its output (the guard region changed)".into());
        }
        self.judge(p, &seen, tol)
    }

    pub fn judge(&self, p: &Problem, seen: &Inspection, tol: f64) -> Result<f64, String> {
        if seen.nonfinite > 0 {
            let first = seen.first_nonfinite.unwrap_or(0);
            return Err(format!(
                "{} of {} outputs are NaN/Inf or were never written (first at row {}, col {})",
                seen.nonfinite,
                p.y_len(),
                first / p.n % p.m,
                first % p.n
            ));
        }
        let got: Vec<f64> = seen.values.iter().map(|&v| v as f64).collect();
        let err = relative_error(&got, &self.reference);
        if err.is_nan() || err > tol {
            return Err(format!("relative error {err:.2e} exceeds the {} bound {tol:.0e}", p.dtype));
        }
        // Entry by entry too: the aggregate error grows only as the square root of the
        // share of wrong entries, so one zeroed column among thousands of good entries
        // passes it. Each entry's error is measured against |want| + the rms of the sample
        // (an absolute floor for entries that cancel to near 0), within twice the bound.
        let (worst, at) = entry_error(&got, &self.reference);
        if worst.is_nan() || worst > 2.0 * tol {
            let i = self.indices[at];
            return Err(format!(
                "the output at row {}, col {} is off by {worst:.2e} of its scale (entry bound {:.0e}): {} against {}",
                i / p.n % p.m,
                i % p.n,
                2.0 * tol,
                got[at],
                self.reference[at]
            ));
        }
        Ok(err)
    }
}

/// Validates one kernel on a fresh draw from `seed` (fills the operands itself).
pub fn validate<B: Backend>(
    b: &B,
    k: &B::Kernel,
    p: &Problem,
    ops: &mut Operands<B::Buffer>,
    seed: u64,
) -> Result<f64, String> {
    let draw = Draw::new(p, seed);
    guarded(|| draw.fill(b, ops))?;
    draw.check_run(b, k, p, ops, p.dtype.tolerance())
}

/// Judges a Y already on the host, computed from operands drawn with `seed`.
pub fn check_output(p: &Problem, out: &[f32], seed: u64) -> Result<f64, String> {
    let draw = Draw::new(p, seed);
    draw.judge(p, &Inspection::of(out, &draw.indices), p.dtype.tolerance())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::DType;

    /// One wrong entry among thousands passes the aggregate bound but not the entry check;
    /// the reference itself, rounded to the output type, passes both.
    #[test]
    fn one_zeroed_entry_is_caught_where_the_aggregate_error_hides_it() {
        let p = Problem::linear(DType::BF16, 1, 4096, 256).unwrap();
        let d = Draw::new(&p, 7);
        let rounded: Vec<f32> = d.reference.iter().map(|&w| half::bf16::from_f64(w).to_f32()).collect();
        let seen = |values: Vec<f32>| Inspection { nonfinite: 0, first_nonfinite: None, values };
        assert!(d.judge(&p, &seen(rounded.clone()), p.dtype.tolerance()).is_ok());
        // An entry of median size zeroed (a kernel skipping one column): the aggregate
        // error stays below the bf16 bound of 2e-2.
        let mut by_size: Vec<usize> = (0..d.reference.len()).collect();
        by_size.sort_by(|&a, &b| d.reference[a].abs().total_cmp(&d.reference[b].abs()));
        let at = by_size[by_size.len() / 2];
        let mut wrong = rounded;
        wrong[at] = 0.0;
        let got: Vec<f64> = wrong.iter().map(|&v| v as f64).collect();
        assert!(relative_error(&got, &d.reference) < p.dtype.tolerance(), "the aggregate alone would pass it");
        let e = d.judge(&p, &seen(wrong), p.dtype.tolerance()).unwrap_err();
        assert!(e.contains("off by"), "{e}");
    }
}
