use crate::backend::{cpu::CpuBackend, Backend};
use crate::error::Result;

pub fn run() -> Result<()> {
    let cpu = CpuBackend::new();
    let id = cpu.identity();
    println!("cpu   available");
    println!("      device   {}", id.device);
    println!("      arch     {}", id.arch);
    for (lib, ver) in &id.libraries {
        println!("      library  {lib} {ver}");
    }
    for (k, v) in &id.details {
        println!("      {k:<8} {v}");
    }
    println!("cuda  not available: not part of this build yet (the CUDA backend is in development)");
    println!("rocm  not available: not part of this build yet (the ROCm backend is in development)");
    Ok(())
}
