//! A short fuzz run (seconds) through the same entry points as the `cargo fuzz` targets
//! (fuzz/): the seed corpora mutated at random (bit flips, byte edits, truncations,
//! duplicated and deleted spans). Any panic fails the test. The long runs are documented
//! in docs/fuzzing.md.

use rand::{rngs::SmallRng, Rng, SeedableRng};
use std::path::Path;
use std::time::{Duration, Instant};

fn seeds(dir: &str) -> Vec<Vec<u8>> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(dir);
    std::fs::read_dir(d).unwrap().map(|e| std::fs::read(e.unwrap().path()).unwrap()).collect()
}

fn mutate(rng: &mut SmallRng, mut v: Vec<u8>) -> Vec<u8> {
    for _ in 0..rng.random_range(1..8) {
        if v.is_empty() {
            v.push(rng.random());
            continue;
        }
        let i = rng.random_range(0..v.len());
        match rng.random_range(0..6) {
            0 => v[i] ^= 1 << rng.random_range(0..8),
            1 => v[i] = rng.random(),
            2 => v.truncate(i),
            3 => {
                let j = rng.random_range(i..v.len());
                let span = v[i..j].to_vec();
                v.splice(i..i, span);
            }
            4 => {
                let j = rng.random_range(i..v.len());
                v.drain(i..j);
            }
            _ => v[i] = *[b',', b'\n', b'"', b'#', b'0', b'9', 0xff, 0].get(rng.random_range(0..8)).unwrap(),
        }
    }
    v
}

fn run(name: &str, f: fn(&[u8]), budget: Duration) {
    let corpus = seeds(name);
    let mut rng = SmallRng::seed_from_u64(0x5eed);
    let start = Instant::now();
    let mut n = 0;
    for s in &corpus {
        f(s);
    }
    while start.elapsed() < budget {
        let s = corpus[rng.random_range(0..corpus.len())].clone();
        f(&mutate(&mut rng, s));
        n += 1;
    }
    eprintln!("{name}: {n} mutated inputs, no panic");
    assert!(n > 50, "{name}: only {n} inputs in {budget:?}");
}

#[test]
fn fuzz_smoke_table() {
    run("table", gemmtune::fuzz::table, Duration::from_secs(3));
}

#[test]
fn fuzz_smoke_shapes() {
    run("shapes", gemmtune::fuzz::shapes, Duration::from_secs(3));
}

#[test]
fn fuzz_smoke_gguf() {
    run("gguf", gemmtune::fuzz::gguf, Duration::from_secs(3));
}

#[test]
fn fuzz_smoke_tunableop() {
    run("tunableop", gemmtune::fuzz::tunableop, Duration::from_secs(3));
}
