//! Prometheus text metrics: requests by endpoint and status (499: the client closed the
//! connection first), tokens, latency histogram,
//! active sequences, and GEMM dispatch coverage.

use crate::dispatch::Coverage;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, u16), u64>,
    latency_counts: [u64; BUCKETS.len()],
    latency_sum: f64,
    latency_n: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    engine_errors: u64,
}

impl Metrics {
    pub fn request(&self, endpoint: &str, status: u16, took: Duration) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *m.requests.entry((endpoint.to_string(), status)).or_default() += 1;
        let s = took.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                m.latency_counts[i] += 1;
            }
        }
        m.latency_sum += s;
        m.latency_n += 1;
    }

    /// A request the engine failed (a forward error), whatever status it was answered with.
    pub fn engine_error(&self) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).engine_errors += 1;
    }

    pub fn tokens(&self, prompt: usize, completion: usize) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        m.prompt_tokens += prompt as u64;
        m.completion_tokens += completion as u64;
    }

    pub fn render(&self, cov: &Coverage, active: usize) -> String {
        let m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut s = String::new();
        s.push_str("# HELP gemmtune_requests_total HTTP requests by endpoint and status.\n# TYPE gemmtune_requests_total counter\n");
        for ((e, code), n) in &m.requests {
            s.push_str(&format!("gemmtune_requests_total{{endpoint=\"{e}\",status=\"{code}\"}} {n}\n"));
        }
        s.push_str("# HELP gemmtune_request_seconds Request latency (to the last token).\n# TYPE gemmtune_request_seconds histogram\n");
        for (i, b) in BUCKETS.iter().enumerate() {
            s.push_str(&format!("gemmtune_request_seconds_bucket{{le=\"{b}\"}} {}\n", m.latency_counts[i]));
        }
        s.push_str(&format!("gemmtune_request_seconds_bucket{{le=\"+Inf\"}} {}\n", m.latency_n));
        s.push_str(&format!("gemmtune_request_seconds_sum {}\ngemmtune_request_seconds_count {}\n", m.latency_sum, m.latency_n));
        s.push_str(&format!(
            "# TYPE gemmtune_prompt_tokens_total counter\ngemmtune_prompt_tokens_total {}\n# TYPE gemmtune_completion_tokens_total counter\ngemmtune_completion_tokens_total {}\n",
            m.prompt_tokens, m.completion_tokens
        ));
        s.push_str(&format!(
            "# HELP gemmtune_engine_errors_total Requests the engine failed (streamed ones were answered 200 before).\n# TYPE gemmtune_engine_errors_total counter\ngemmtune_engine_errors_total {}\n",
            m.engine_errors
        ));
        s.push_str(&format!("# TYPE gemmtune_active_sequences gauge\ngemmtune_active_sequences {active}\n"));
        s.push_str("# HELP gemmtune_gemm_calls_total GEMM calls by how the dispatcher chose the kernel.\n# TYPE gemmtune_gemm_calls_total counter\n");
        for (src, n) in [("exact", cov.hits), ("bucket", cov.bucket), ("default", cov.default)] {
            s.push_str(&format!("gemmtune_gemm_calls_total{{source=\"{src}\"}} {n}\n"));
        }
        s.push_str(&format!("# TYPE gemmtune_gemm_unseen_shapes gauge\ngemmtune_gemm_unseen_shapes {}\n", cov.unseen.len()));
        s
    }
}
