//! A short fuzz run (seconds) through the same entry points as the `cargo fuzz` targets
//! (fuzz/): the seed corpora mutated at random (bit flips, byte edits, truncations,
//! duplicated and deleted spans). Any panic fails the test. The long runs are documented
//! in docs/fuzzing.md.

use rand::{rngs::SmallRng, Rng, SeedableRng};
use std::path::Path;


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

/// The seeds, then `count` mutations from a fixed seed: the same inputs on every machine,
/// so a failure reproduces (a time budget fuzzed whatever a machine's speed reached).
fn run(name: &str, f: fn(&[u8]), count: usize) {
    let corpus = seeds(name);
    let mut rng = SmallRng::seed_from_u64(0x5eed);
    for s in &corpus {
        f(s);
    }
    for _ in 0..count {
        let s = corpus[rng.random_range(0..corpus.len())].clone();
        f(&mutate(&mut rng, s));
    }
    eprintln!("{name}: {count} mutated inputs, no panic");
}

#[test]
fn fuzz_smoke_table() {
    run("table", gemmtune::fuzz::table, 100_000);
}

#[test]
fn fuzz_smoke_shapes() {
    run("shapes", gemmtune::fuzz::shapes, 100_000);
}

#[test]
fn fuzz_smoke_gguf() {
    run("gguf", gemmtune::fuzz::gguf, 100_000);
}

#[test]
fn fuzz_smoke_tunableop() {
    run("tunableop", gemmtune::fuzz::tunableop, 100_000);
}
