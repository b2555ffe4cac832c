use crate::backend::{cpu::CpuBackend, cuda::CudaBackend, Backend};
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
    match CudaBackend::new(0) {
        Ok(cuda) => {
            let id = cuda.identity();
            println!("cuda  available");
            println!("      device   {}", id.device);
            println!("      arch     {}", id.arch);
            for (lib, ver) in &id.libraries {
                println!("      library  {lib} {ver}");
            }
            for (k, v) in &id.details {
                println!("      {k:<8} {v}");
            }
        }
        Err(e) => println!("cuda  not available: {e}"),
    }
    println!("rocm  not available: not part of this build yet (the ROCm backend is in development)");
    Ok(())
}
