//! Numerical validation of one candidate on fresh random inputs against the f64
//! reference. A candidate that writes NaN/Inf, leaves any output unwritten (the output
//! is poisoned with NaN first) or exceeds the dtype's error bound is rejected.

use super::guard::guarded;
use crate::backend::{Backend, Operands};
use crate::problem::Problem;
use crate::reference::{reference, relative_error, Sample};

/// Validates `k` with operands drawn from `seed`; returns the relative error or why the
/// candidate is rejected. `ops` is reused between candidates (refilled every time).
pub fn validate<B: Backend>(
    b: &B,
    k: &B::Kernel,
    p: &Problem,
    ops: &mut Operands<B::Buffer>,
    seed: u64,
) -> Result<f64, String> {
    let (x_seed, w_seed) = operand_seeds(seed);
    let out = guarded(|| {
        b.fill_random(&mut ops.x, x_seed)?;
        b.fill_random(&mut ops.w, w_seed)?;
        b.fill_nan(&mut ops.y)?;
        b.run(k, p, ops)?;
        b.download(&ops.y)
    })?;
    check_output(p, &out, seed)
}

/// The seeds of X and W for a validation draw.
pub fn operand_seeds(seed: u64) -> (u64, u64) {
    (seed, seed ^ 0x5DEE_CE66_D1CE_4E5B)
}

/// Checks a downloaded Y of `p` computed from operands drawn with `operand_seeds(seed)`:
/// all finite and written, sampled entries within the dtype's bound of the f64 reference.
pub fn check_output(p: &Problem, out: &[f32], seed: u64) -> Result<f64, String> {
    let (x_seed, w_seed) = operand_seeds(seed);
    let bad = out.iter().filter(|v| !v.is_finite()).count();
    if bad > 0 {
        let first = out.iter().position(|v| !v.is_finite()).unwrap_or(0);
        return Err(format!(
            "{bad} of {} outputs are NaN/Inf or were never written (first at row {}, col {})",
            out.len(),
            first / p.n % p.m,
            first % p.n
        ));
    }
    let sample = Sample::choose(p, seed);
    let want = reference(p, &sample, x_seed, w_seed);
    let got: Vec<f64> = sample.y_indices(p).into_iter().map(|i| out[i] as f64).collect();
    let err = relative_error(&got, &want);
    let tol = p.dtype.tolerance();
    if err.is_nan() || err > tol {
        return Err(format!("relative error {err:.2e} exceeds the {} bound {tol:.0e}", p.dtype));
    }
    Ok(err)
}
