use super::with_runtime;
use crate::backend::cpu::CpuBackend;
use crate::backend::cuda::CudaBackend;
use crate::cli::{BackendName, ServeArgs};
use crate::error::{Error, Result};
use crate::model::tokenizer::Tokenizer;

pub fn run(a: &ServeArgs) -> Result<()> {
    a.exec.check(a.record.as_deref())?;
    // The address first: a typo or a port in use is found before the model loads.
    use std::net::ToSocketAddrs;
    let addrs: Vec<std::net::SocketAddr> = (a.host.as_str(), a.port)
        .to_socket_addrs()
        .map_err(|e| Error::input(format!("--host '{}': cannot be resolved to an address ({e})", a.host)))?
        .collect();
    let std_listener = std::net::TcpListener::bind(&addrs[..])
        .map_err(|e| Error::runtime(format!("cannot bind {}:{}: {e}", a.host, a.port)))?;
    std_listener.set_nonblocking(true).map_err(|e| Error::runtime(format!("listener: {e}")))?;
    let tok = Tokenizer::load(&a.model)?;
    let name = a.name.clone().unwrap_or_else(|| {
        let f = a.model.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        f.split('.').next().unwrap_or(&f).to_string()
    });
    with_runtime!(&a.exec, &a.model, a.table.as_deref(), a.strict, a.record.as_deref(), a.max_batch, (rt, stats) => {
        let rt_tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::runtime(format!("tokio: {e}")))?;
        let result = rt_tokio.block_on(async {
            let listener = tokio::net::TcpListener::from_std(std_listener).map_err(|e| Error::runtime(format!("listener: {e}")))?;
            let addr = listener.local_addr().map_err(|e| Error::runtime(e.to_string()))?;
            eprintln!(
                "serving '{name}' on http://{addr} ({:?}, max batch {}, queue {}, prefill chunk {})",
                a.exec.backend(), a.max_batch, a.queue, a.prefill_chunk
            );
            tokio::select! {
                r = crate::serve::serve(rt, tok, stats.clone(), name, listener, crate::serve::Limits { max_batch: a.max_batch, queue: a.queue, prefill_chunk: a.prefill_chunk as usize }) => {
                    r.map_err(|e| Error::runtime(format!("server: {e}")))
                }
                _ = tokio::signal::ctrl_c() => {
                    eprintln!("stopping");
                    Ok(())
                }
                // What docker and systemd send: stop the same way (the record is written).
                _ = terminated() => {
                    eprintln!("stopping (SIGTERM)");
                    Ok(())
                }
            }
        });
        stats.flush_record()?;
        result
    })
}

/// Resolves on SIGTERM (never elsewhere).
async fn terminated() {
    #[cfg(unix)]
    if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        s.recv().await;
        return;
    }
    std::future::pending::<()>().await
}
