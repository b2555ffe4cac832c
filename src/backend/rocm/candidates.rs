//! Which kernels the ROCm backend offers for a problem and what an id means, written
//! against `Libraries` (the questions asked of rocBLAS and hipBLASLt) so the logic is the
//! same for the real libraries and for the test double below.
//!
//! Ids:
//! - `rocm:rocblas:default` — `rocblas_gemm_ex` with `rocblas_gemm_algo_standard` (what
//!   PyTorch runs untuned; the baseline);
//! - `rocm:rocblas:<index>` — one rocBLAS solution (`rocblas_gemm_algo_solution_index`),
//!   TunableOp's `Gemm_Rocblas_<index>`; valid for the rocBLAS build in the validators;
//! - `rocm:hipblaslt:<version>:<blob>` — one hipBLASLt algorithm (hipblaslt.rs);
//! - `rocm:hipblaslt-index:<index>` — a hipBLASLt algorithm named by index only (rows
//!   imported from TunableOp): resolved by finding the algorithm with that index in the
//!   library's list for the problem;
//! - `rocm:gemv:...`, `rocm:mfma:...` — kernels of our own (custom.rs).

use super::custom::Custom;
use super::hipblaslt::{decode_id, encode_id, index_of};
use super::sys::hipblasLtMatmulAlgo_t as Algo;
use crate::backend::{Candidate, KernelId};
use crate::error::{Error, Result};
use crate::problem::Problem;

/// The questions the candidate logic asks of the libraries.
pub trait Libraries {
    /// Solution indices rocBLAS lists for `p` (`rocblas_gemm_ex_get_solutions`): the ones
    /// that can solve it. Asked instead of a check-only `rocblas_gemm_ex` (rocblas.rs says why).
    fn rocblas_solutions(&self, p: &Problem) -> Result<Vec<i32>>;
    /// hipBLASLt's algorithms for `p` with their workspace, heuristic picks first.
    fn hipblaslt_algorithms(&self, p: &Problem) -> Result<Vec<(Algo, usize)>>;
    /// `hipblasLtGetVersion`.
    fn hipblaslt_version(&self) -> i32;
    /// The device's processor (`gfx942`), deciding which kernels of ours can run.
    fn gfx(&self) -> &str;
}

/// A resolved ROCm kernel, before any device state is attached.
#[derive(Clone, Debug, PartialEq)]
pub enum Choice {
    RocblasDefault,
    Rocblas(i32),
    Hipblaslt(Algo),
    Custom(Custom),
}

pub const DEFAULT: &str = "rocm:rocblas:default";

/// rocBLAS and hipBLASLt kernels (`rocm:rocblas:*`, `rocm:hipblaslt:*`, and TunableOp's
/// `rocm:hipblaslt-index:*`): a solution or algorithm of the library for one problem (see
/// `Backend::fits_other_m`).
pub fn is_library(id: &KernelId) -> bool {
    let s = id.as_str();
    s.starts_with("rocm:rocblas:") || s.starts_with("rocm:hipblaslt")
}

/// Most candidates taken from each library per problem (rocBLAS solutions, hipBLASLt
/// algorithms), in the library's order.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub rocblas: usize,
    pub hipblaslt: usize,
}

/// Every candidate for `p`: the default, rocBLAS solutions that pass the pre-check,
/// hipBLASLt algorithms (one per solution index), then our own kernels.
pub fn enumerate(libs: &impl Libraries, p: &Problem, budget: Budget) -> Result<Vec<Candidate>> {
    let mut out = vec![Candidate { id: crate::backend::KernelId::new(DEFAULT), attrs: "graph=1".into() }];
    // rocBLAS's list comes out of a set ordered by pointer (Tensile's `getAllSolutions`):
    // sorted, the budget keeps the same solutions on every run.
    let mut solutions = libs.rocblas_solutions(p)?;
    solutions.sort_unstable();
    solutions.dedup();
    for index in solutions.into_iter().filter(|&i| i > 0).take(budget.rocblas) {
        out.push(Candidate::new(format!("rocm:rocblas:{index}")));
    }
    let version = libs.hipblaslt_version();
    let mut indices = std::collections::HashSet::new();
    let mut taken = 0;
    for (algo, ws) in libs.hipblaslt_algorithms(p)? {
        if taken >= budget.hipblaslt {
            break;
        }
        if indices.insert(index_of(&algo)) {
            taken += 1;
            out.push(Candidate { id: crate::backend::KernelId::new(encode_id(version, &algo)), attrs: format!("graph=1;workspace={ws}") });
        }
    }
    out.extend(Custom::candidates(p, libs.gfx()).into_iter().map(|c| Candidate::new(c.id())));
    for c in &mut out {
        if c.attrs.is_empty() {
            c.attrs = "graph=1".into();
        }
    }
    Ok(out)
}

/// What `id` names for `p`, or why it cannot run here.
pub fn resolve(libs: &impl Libraries, p: &Problem, id: &str) -> Result<Choice> {
    let parts: Vec<&str> = id.split(':').collect();
    match parts.as_slice() {
        ["rocm", "rocblas", "default"] => Ok(Choice::RocblasDefault),
        ["rocm", "rocblas", index] => {
            let i: i32 = index.parse().map_err(|_| Error::input(format!("'{id}': bad rocBLAS solution index")))?;
            // rocBLAS runs its default for an index <= 0 (`solution_index > 0` guards both
            // its paths): such an id would time the default under another name.
            if i <= 0 {
                return Err(Error::input(format!("'{id}': rocBLAS solution indices start at 1 (0 and below run its default, {DEFAULT})")));
            }
            if !libs.rocblas_solutions(p)?.contains(&i) {
                return Err(Error::runtime(format!("{id}: rocBLAS solution {i} cannot solve {p}")));
            }
            Ok(Choice::Rocblas(i))
        }
        ["rocm", "hipblaslt", ..] => {
            let algo = decode_id(id, libs.hipblaslt_version()).map_err(|e| Error::runtime(format!("{id}: {e}")))?;
            let listed = libs.hipblaslt_algorithms(p)?.into_iter().any(|(a, _)| a.data == algo.data);
            if !listed {
                return Err(Error::runtime(format!("{id}: hipBLASLt does not offer this algorithm for {p}")));
            }
            Ok(Choice::Hipblaslt(algo))
        }
        ["rocm", "hipblaslt-index", index] => {
            let i: i32 = index.parse().map_err(|_| Error::input(format!("'{id}': bad hipBLASLt algorithm index")))?;
            libs.hipblaslt_algorithms(p)?
                .into_iter()
                .map(|(a, _)| a)
                .find(|a| index_of(a) == i)
                .map(Choice::Hipblaslt)
                .ok_or_else(|| Error::runtime(format!("{id}: hipBLASLt lists no algorithm with index {i} for {p}")))
        }
        ["rocm", "gemv" | "mfma", ..] => {
            let c = Custom::parse(id).map_err(Error::input)?;
            match c.unsupported(p, libs.gfx()) {
                Some(why) => Err(Error::runtime(format!("{id}: {why}"))),
                None => Ok(Choice::Custom(c)),
            }
        }
        _ => Err(Error::input(format!("'{id}' is not a ROCm kernel id"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::DType;

    #[test]
    fn library_solutions_are_told_from_our_kernels() {
        for id in [DEFAULT, "rocm:rocblas:1216", "rocm:hipblaslt:110000:00ff", "rocm:hipblaslt-index:56537"] {
            assert!(is_library(&KernelId::new(id)), "{id}");
        }
        assert!(!is_library(&KernelId::new("rocm:gemv:r2:t256:u1")));
    }

    /// TEST DOUBLE, never a backend: answers the library questions from fixed lists, as a
    /// device with these rocBLAS solutions and hipBLASLt algorithms would.
    struct FakeLibraries {
        solutions: Vec<i32>,
        algorithms: Vec<(Algo, usize)>,
        version: i32,
        gfx: &'static str,
    }

    fn algo(index: i32, tag: u8) -> Algo {
        let mut data = [tag; 16];
        data[..4].copy_from_slice(&index.to_le_bytes());
        Algo { data, max_workspace_bytes: 32 << 20 }
    }

    impl Libraries for FakeLibraries {
        fn rocblas_solutions(&self, _p: &Problem) -> Result<Vec<i32>> {
            Ok(self.solutions.clone())
        }
        fn hipblaslt_algorithms(&self, _p: &Problem) -> Result<Vec<(Algo, usize)>> {
            Ok(self.algorithms.clone())
        }
        fn hipblaslt_version(&self) -> i32 {
            self.version
        }
        fn gfx(&self) -> &str {
            self.gfx
        }
    }

    fn fake() -> FakeLibraries {
        FakeLibraries {
            // As rocBLAS lists them (in no useful order), with a repeat and two the
            // library would treat as its default.
            solutions: vec![1216, 7, 1216, 0, 40000, -3],
            // Index 56537 twice (the heuristic pick and the appended list), 12 once.
            algorithms: vec![(algo(56537, 1), 4096), (algo(12, 2), 0), (algo(56537, 3), 0), (algo(-5, 4), 1 << 20)],
            version: 100100,
            gfx: "gfx942",
        }
    }

    const BIG: Budget = Budget { rocblas: 512, hipblaslt: 512 };

    #[test]
    fn enumeration_keeps_what_the_libraries_list_rocblas_by_index_hipblaslt_in_order() {
        let f = fake();
        let p = Problem::linear(DType::F32, 64, 4096, 4096).unwrap();
        let ids: Vec<String> = enumerate(&f, &p, BIG).unwrap().into_iter().map(|c| c.id.0).collect();
        let lt = |a: Algo| encode_id(100100, &a);
        assert_eq!(
            ids,
            vec![
                DEFAULT.to_string(),
                "rocm:rocblas:7".into(),
                "rocm:rocblas:1216".into(),
                "rocm:rocblas:40000".into(),
                lt(algo(56537, 1)),
                lt(algo(12, 2)),
                lt(algo(-5, 4)),
            ]
        );
        let c = enumerate(&f, &p, BIG).unwrap();
        assert_eq!(c[4].attrs, "graph=1;workspace=4096");
        // Budgets cap each library: the lowest rocBLAS indices, hipBLASLt's heuristic picks.
        let small = enumerate(&f, &p, Budget { rocblas: 1, hipblaslt: 1 }).unwrap();
        let ids: Vec<&str> = small.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, vec![DEFAULT, "rocm:rocblas:7", lt(algo(56537, 1)).as_str()]);
        // Decode bf16 problems add our kernels; MFMA only where the device has it.
        let d = Problem::linear(DType::BF16, 1, 4096, 4096).unwrap();
        let n = enumerate(&f, &d, BIG).unwrap().len();
        assert_eq!(n, 7 + 18 + 72);
        let rdna = FakeLibraries { gfx: "gfx1100", ..fake() };
        assert_eq!(enumerate(&rdna, &d, BIG).unwrap().len(), 7 + 18);
    }

    #[test]
    fn every_candidate_resolves_to_what_it_names() {
        let f = fake();
        let p = Problem::linear(DType::BF16, 4, 4096, 4096).unwrap();
        for c in enumerate(&f, &p, BIG).unwrap() {
            let choice = resolve(&f, &p, c.id.as_str()).unwrap_or_else(|e| panic!("{}: {e}", c.id));
            let back = match &choice {
                Choice::RocblasDefault => DEFAULT.to_string(),
                Choice::Rocblas(i) => format!("rocm:rocblas:{i}"),
                Choice::Hipblaslt(a) => encode_id(f.version, a),
                Choice::Custom(k) => k.id(),
            };
            assert_eq!(back, c.id.0);
        }
    }

    #[test]
    fn ids_that_do_not_fit_are_refused_with_a_reason() {
        let f = fake();
        let p = Problem::linear(DType::BF16, 4, 4096, 4096).unwrap();
        let err = |id: &str| resolve(&f, &p, id).unwrap_err().to_string();
        assert!(err("rocm:rocblas:99").contains("cannot solve"));
        assert!(err("rocm:rocblas:0").contains("start at 1"));
        assert!(err("rocm:rocblas:-3").contains("start at 1"));
        assert!(err("rocm:rocblas:x").contains("bad rocBLAS solution index"));
        assert!(err(&encode_id(100200, &algo(12, 2))).contains("re-tune"));
        assert!(err(&encode_id(100100, &algo(13, 2))).contains("does not offer"));
        assert!(err("rocm:hipblaslt-index:13").contains("no algorithm with index 13"));
        assert!(resolve(&f, &p.with_m(17), "rocm:mfma:mt1:w4:v1:n1:k1").unwrap_err().to_string().contains("M <= 16"));
        assert!(err("cuda:cublas:default").contains("not a ROCm kernel id"));
        // A TunableOp row names the algorithm by index: the listed blob is found.
        assert_eq!(resolve(&f, &p, "rocm:hipblaslt-index:12").unwrap(), Choice::Hipblaslt(algo(12, 2)));
        assert_eq!(resolve(&f, &p, "rocm:hipblaslt-index:56537").unwrap(), Choice::Hipblaslt(algo(56537, 1)));
        assert!(err("rocm:rocblas:-123456").contains("start at 1"));
    }

    #[test]
    fn kernels_of_an_imported_tunableop_file_resolve_through_the_same_logic() {
        let text = include_str!("../../../tests/data/tunableop/rocm_results.csv");
        let (t, _) = crate::tunableop::import(text, std::path::Path::new("rocm_results.csv")).unwrap();
        let f = fake();
        let mut outcomes: Vec<(String, bool)> = Vec::new();
        for r in &t.rows {
            outcomes.push((r.kernel.0.clone(), resolve(&f, &r.problem, r.kernel.as_str()).is_ok()));
        }
        outcomes.sort();
        assert_eq!(
            outcomes,
            vec![
                ("rocm:hipblaslt-index:56537".to_string(), true),
                ("rocm:rocblas:-123456".to_string(), false),
                ("rocm:rocblas:1216".to_string(), true),
                ("rocm:rocblas:default".to_string(), true),
            ]
        );
    }
}
