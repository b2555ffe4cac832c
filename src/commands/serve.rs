use crate::cli::ServeArgs;
use crate::error::{Error, Result};

pub fn run(a: &ServeArgs) -> Result<()> {
    let (model, tok, d) = super::load_runtime(&a.model, a.table.as_deref(), a.strict, a.record.as_deref(), a.weights)?;
    let name = a.name.clone().unwrap_or_else(|| {
        let f = a.model.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        f.split('.').next().unwrap_or(&f).to_string()
    });
    if a.max_batch == 0 {
        return Err(Error::input("--max-batch must be at least 1"));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::runtime(format!("tokio: {e}")))?;
    let d = std::sync::Arc::new(d);
    let result = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind((a.host.as_str(), a.port))
            .await
            .map_err(|e| Error::runtime(format!("cannot bind {}:{}: {e}", a.host, a.port)))?;
        let addr = listener.local_addr().map_err(|e| Error::runtime(e.to_string()))?;
        eprintln!("serving '{name}' on http://{addr} (max batch {}, queue {})", a.max_batch, a.queue);
        tokio::select! {
            r = crate::serve::serve(model, tok, d.clone(), name, listener, a.max_batch, a.queue) => {
                r.map_err(|e| Error::runtime(format!("server: {e}")))
            }
            _ = tokio::signal::ctrl_c() => {
                eprintln!("stopping");
                Ok(())
            }
        }
    });
    d.flush_record()?;
    result
}
