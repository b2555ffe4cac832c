//! Records the versions of the CPU GEMM crates compiled in, from Cargo.lock, so tables
//! can name them as validators (a new crate version may pick different micro-kernels).

fn main() {
    let lock = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("Cargo.lock");
    println!("cargo:rerun-if-changed=Cargo.lock");
    let text = std::fs::read_to_string(&lock).unwrap_or_default();
    for (krate, var) in [("gemm", "GEMMTUNE_LIB_GEMM"), ("matrixmultiply", "GEMMTUNE_LIB_MATRIXMULTIPLY")] {
        let needle = format!("name = \"{krate}\"\nversion = \"");
        let version = text
            .find(&needle)
            .and_then(|i| text[i + needle.len()..].split('"').next())
            .unwrap_or("unknown");
        println!("cargo:rustc-env={var}={version}");
    }
}
