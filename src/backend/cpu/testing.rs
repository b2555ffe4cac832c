//! Test doubles inside the real CPU backend, offered only when explicitly enabled. Each
//! misbehaves in one way the tuner must handle: too slow, numerically wrong, NaN output,
//! unwritten output, a panic, or the default kernel under another name (a tie).

use super::libs;
use super::tensor::HostTensor;
use crate::problem::Problem;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TestKernel {
    /// Correct but slow: a naive triple loop.
    Slow,
    /// 3 % error on every output: fast and wrong.
    Wrong,
    /// One NaN in the output.
    Nan,
    /// Leaves the last output row unwritten.
    Partial,
    /// Panics.
    Panic,
    /// The default kernel under another name: ties with the default.
    Alias,
    /// Right results, plus one element written just past the end of Y.
    Oob,
    /// Kills the process (like a sticky GPU error or a segfault would); offered only with
    /// `GEMMTUNE_CPU_TEST_ABORT=1`, to test worker isolation.
    Abort,
    /// Never returns (a hung kernel); offered only with `GEMMTUNE_CPU_TEST_HANG=1`.
    Hang,
    /// Fails like a sticky GPU error: this call and every later one in the process report
    /// a lost context (the backend runs it, see `CpuBackend::run`); offered only with
    /// `GEMMTUNE_CPU_TEST_STICKY=1`, to test that `tune` carries on in a fresh process.
    Sticky,
}

impl TestKernel {
    pub const ALL: [TestKernel; 7] = [
        TestKernel::Slow,
        TestKernel::Wrong,
        TestKernel::Nan,
        TestKernel::Partial,
        TestKernel::Panic,
        TestKernel::Alias,
        TestKernel::Oob,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TestKernel::Slow => "slow",
            TestKernel::Wrong => "wrong",
            TestKernel::Nan => "nan",
            TestKernel::Partial => "partial",
            TestKernel::Panic => "panic",
            TestKernel::Alias => "alias",
            TestKernel::Oob => "oob",
            TestKernel::Abort => "abort",
            TestKernel::Hang => "hang",
            TestKernel::Sticky => "sticky",
        }
    }

    /// The doubles that take the process down with them, each offered only when its
    /// environment variable is set (`enabled_by_env`).
    pub const ON_DEMAND: [TestKernel; 3] = [TestKernel::Abort, TestKernel::Hang, TestKernel::Sticky];

    pub fn parse(s: &str) -> Option<TestKernel> {
        TestKernel::ALL.into_iter().chain(TestKernel::ON_DEMAND).find(|t| t.name() == s)
    }

    /// Whether this is an on-demand double whose variable (`GEMMTUNE_CPU_TEST_ABORT`,
    /// `_HANG`, `_STICKY`) is set to 1.
    pub fn enabled_by_env(self) -> bool {
        let var = match self {
            TestKernel::Abort => "GEMMTUNE_CPU_TEST_ABORT",
            TestKernel::Hang => "GEMMTUNE_CPU_TEST_HANG",
            TestKernel::Sticky => "GEMMTUNE_CPU_TEST_STICKY",
            _ => return false,
        };
        std::env::var(var).is_ok_and(|v| v == "1")
    }

    pub fn run(self, p: &Problem, x: &HostTensor, w: &HostTensor, y: &mut HostTensor, threads: usize) {
        match self {
            TestKernel::Slow => {
                let (xf, wf) = (x.as_f32(), w.as_f32());
                let (xs, ws) = (p.x_strides(), p.w_strides());
                let mut out = vec![0.0f32; p.y_len()];
                for b in 0..p.batch {
                    let (xo, wo, yo) = (b * p.m * p.k, b * p.n * p.k, b * p.m * p.n);
                    for i in 0..p.m {
                        for j in 0..p.n {
                            let mut acc = 0.0f32;
                            for kk in 0..p.k {
                                // Column-order walk over X: deliberately cache-unfriendly.
                                acc += xf[xo + i * xs.row + kk * xs.col] * wf[wo + j * ws.row + kk * ws.col];
                            }
                            out[yo + i * p.n + j] = acc;
                        }
                    }
                }
                y.store_f32(&out);
            }
            TestKernel::Wrong | TestKernel::Nan | TestKernel::Partial => {
                let mut tmp = HostTensor::zeros(p.dtype, p.y_len());
                libs::gemm_crate(p, x, w, &mut tmp, threads);
                let mut v = tmp.as_f32().into_owned();
                match self {
                    TestKernel::Wrong => v.iter_mut().for_each(|e| *e *= 1.03),
                    TestKernel::Nan => {
                        let mid = v.len() / 2;
                        v[mid] = f32::NAN
                    }
                    _ => {
                        // All but the last row of the last batch item, written through
                        // `write_f32` as the real kernels write (for 16-bit outputs: a copy).
                        let cut = v.len() - p.n;
                        return y.write_f32(|out| out[..cut].copy_from_slice(&v[..cut]));
                    }
                }
                y.store_f32(&v);
            }
            TestKernel::Panic => panic!("test kernel panicked on purpose"),
            TestKernel::Alias => libs::gemm_crate(p, x, w, y, threads),
            TestKernel::Oob => {
                libs::gemm_crate(p, x, w, y, threads);
                // One element past the end, into the guard region when there is one (a
                // tensor without spare capacity is left alone: no real out-of-bounds write).
                match y {
                    HostTensor::F32(v) => {
                        if v.capacity() > v.len() {
                            // SAFETY: within the allocation's capacity.
                            unsafe { *v.as_mut_ptr().add(v.len()) = 1.0 };
                        }
                    }
                    // 16-bit outputs: past the end of the f32 copy real kernels write into
                    // (`write_f32` keeps a guard region behind it).
                    // SAFETY: within the copy's guard region.
                    _ => y.write_f32(|out| unsafe { *out.as_mut_ptr().add(out.len()) = 1.0 }),
                }
            }
            TestKernel::Abort => std::process::abort(),
            TestKernel::Hang => loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
            },
            TestKernel::Sticky => unreachable!("CpuBackend::run fails it before it runs"),
        }
    }
}
