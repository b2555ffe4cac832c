//! Numerical validation of candidates against the f64 reference. A candidate that
//! writes NaN/Inf, leaves any output unwritten (Y is poisoned with NaN before every
//! run and then scanned in full), writes past Y's end or into X or W, or exceeds the
//! dtype's error bound is rejected.
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

    /// Why X or W no longer hold this draw's operands, if they do not: a kernel that
    /// writes into its inputs (as scratch, say) can still leave a right Y, and would
    /// corrupt a model's weights. Compares `INPUT_PROBES` positions spread evenly over
    /// each (a random phase, the last element too), so any write covering more than
    /// 1/`INPUT_PROBES` of an operand shows. Packed weights are not compared.
    pub fn inputs_changed<B: Backend>(&self, b: &B, p: &Problem, ops: &Operands<B::Buffer>) -> GtResult<Option<String>> {
        let (xs, ws) = operand_seeds(self.seed);
        let mut operands = vec![("X", &ops.x, xs, p.x_len())];
        if p.wformat.is_dense() {
            operands.push(("W", &ops.w, ws, p.w_len()));
        }
        for (name, buf, seed, len) in operands {
            let at = probes(len, self.seed);
            let seen = b.peek(buf, &at)?;
            for (&i, &got) in at.iter().zip(&seen) {
                let put = crate::random::element(p.dtype, seed, i as u64);
                if got != put {
                    return Ok(Some(format!("wrote into its input {name}: element {i} holds {got}, the draw put {put} there")));
                }
            }
        }
        Ok(None)
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

/// Positions of an operand `inputs_changed` compares.
pub const INPUT_PROBES: usize = 4096;

/// `INPUT_PROBES` positions of an operand of `len` elements, evenly spaced from a phase
/// drawn from `seed`, and the last.
fn probes(len: usize, seed: u64) -> Vec<usize> {
    let step = len.div_ceil(INPUT_PROBES).max(1);
    let phase = (seed as usize) % step;
    let mut v: Vec<usize> = (phase..len).step_by(step).collect();
    if len > 0 && v.last() != Some(&(len - 1)) {
        v.push(len - 1);
    }
    v
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

    /// One wrong batch item among 12 (a kernel with a bad stride far into the batch) is
    /// rejected, wherever the sample's full-grid items fall; the exact product passes.
    #[test]
    fn a_wrong_batch_item_is_caught() {
        let p = Problem::new(DType::F32, crate::problem::Layout::TN, 3, 4, 8, 12).unwrap();
        let (xs, ws) = operand_seeds(21);
        let x: Vec<f64> = (0..p.x_len()).map(|i| crate::random::element(p.dtype, xs, i as u64) as f64).collect();
        let w: Vec<f64> = (0..p.w_len()).map(|i| crate::random::element(p.dtype, ws, i as u64) as f64).collect();
        // Item `b` of Y from X's item `b` and W's item `wb` (TN: rows of 8 in both).
        let item = |y: &mut [f32], b: usize, wb: usize| {
            for i in 0..3 {
                for j in 0..4 {
                    let dot: f64 = (0..8).map(|kk| x[b * 24 + i * 8 + kk] * w[wb * 32 + j * 8 + kk]).sum();
                    y[b * 12 + i * 4 + j] = dot as f32;
                }
            }
        };
        let mut y = vec![0f32; p.y_len()];
        (0..12).for_each(|b| item(&mut y, b, b));
        assert!(check_output(&p, &y, 21).is_ok());
        for bad in [1, 6, 10] {
            let mut wrong = y.clone();
            // Item `bad` computed from the previous item's weights.
            item(&mut wrong, bad, bad - 1);
            assert!(check_output(&p, &wrong, 21).is_err(), "item {bad} went unseen");
        }
    }
}
