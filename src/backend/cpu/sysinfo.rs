//! What the CPU backend needs to know about this machine: a device name for validators,
//! the instruction sets its kernels may use, and the last-level cache size.

/// SIMD instruction sets the own kernels are compiled for (chosen at run time).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    Avx512,
    Avx2,
    Portable,
}

impl Isa {
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Portable => "portable",
        }
    }
    pub fn parse(s: &str) -> Option<Isa> {
        [Isa::Avx512, Isa::Avx2, Isa::Portable].into_iter().find(|i| i.name() == s)
    }
    pub fn available(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                Isa::Avx2.available()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
    /// The instruction sets worth offering here, best first.
    pub fn offered() -> Vec<Isa> {
        let simd: Vec<Isa> = [Isa::Avx512, Isa::Avx2].into_iter().filter(|i| i.available()).collect();
        if simd.is_empty() {
            vec![Isa::Portable]
        } else {
            simd
        }
    }
}

pub fn threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

pub fn arch_string() -> String {
    let mut s = std::env::consts::ARCH.to_string();
    for isa in [Isa::Avx512, Isa::Avx2] {
        if isa.available() {
            s.push('+');
            s.push_str(isa.name());
        }
    }
    s
}

/// Size in bytes of the largest cache level (the last-level cache); 32 MiB if unknown.
pub fn llc_bytes() -> usize {
    let mut best = 0usize;
    for i in 0..8 {
        let path = format!("/sys/devices/system/cpu/cpu0/cache/index{i}/size");
        if let Ok(s) = std::fs::read_to_string(path) {
            best = best.max(parse_size(s.trim()).unwrap_or(0));
        }
    }
    if best == 0 {
        32 << 20
    } else {
        best
    }
}

/// Copy bandwidth (bytes read + written per second) over 256 MiB with all threads:
/// the best of several repetitions, so page faults and frequency ramps stay out.
pub fn copy_bandwidth(pool: &rayon::ThreadPool) -> f64 {
    use rayon::prelude::*;
    let n = 32 << 20; // f64 elements: 256 MiB per buffer
    let src: Vec<f64> = (0..n).map(|i| i as f64).collect();
    let mut dst = vec![1.0f64; n];
    let mut best = f64::MAX;
    for _ in 0..6 {
        let t = std::time::Instant::now();
        pool.install(|| {
            dst.par_chunks_mut(1 << 16).zip(src.par_chunks(1 << 16)).for_each(|(d, s)| d.copy_from_slice(s))
        });
        best = best.min(t.elapsed().as_secs_f64());
    }
    std::hint::black_box(&dst);
    (2 * n * 8) as f64 / best
}

fn parse_size(s: &str) -> Option<usize> {
    let (num, mult) = match s.chars().last()? {
        'K' => (&s[..s.len() - 1], 1 << 10),
        'M' => (&s[..s.len() - 1], 1 << 20),
        'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<usize>().ok().map(|n| n * mult)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("32768K"), Some(32 << 20));
        assert_eq!(parse_size("2M"), Some(2 << 20));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("x"), None);
        assert!(llc_bytes() >= 1 << 16);
        // The widest available set first; the portable kernels only when no SIMD set is.
        let offered = Isa::offered();
        let simd = Isa::Avx2.available() || Isa::Avx512.available();
        assert!(!offered.is_empty());
        assert_eq!(offered.contains(&Isa::Portable), !simd, "{offered:?}");
        assert_eq!(offered.first() == Some(&Isa::Avx512), Isa::Avx512.available(), "{offered:?}");
    }
}
