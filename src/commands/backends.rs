use crate::backend::{cpu::CpuBackend, cuda::CudaBackend, Backend, Identity};
use crate::error::Result;

fn print_identity(id: &Identity) {
    println!("{:<5} available", id.backend);
    println!("      device   {}", id.device);
    println!("      arch     {}", id.arch);
    for (lib, ver) in &id.libraries {
        println!("      library  {lib} {ver}");
    }
    for (k, v) in &id.details {
        println!("      {k:<8} {v}");
    }
}

pub fn run() -> Result<()> {
    print_identity(CpuBackend::new().identity());
    match CudaBackend::new(0) {
        Ok(cuda) => print_identity(cuda.identity()),
        Err(e) => println!("cuda  not available: {e}"),
    }
    match crate::backend::rocm::RocmBackend::new(0) {
        Ok(rocm) => print_identity(rocm.identity()),
        Err(e) => println!("rocm  not available: {e}"),
    }
    Ok(())
}
