//! One error type for the library. Its kind decides the CLI exit code:
//! input errors (bad files, bad arguments) exit 2, everything else exits 1.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user's input is at fault: a file, a field, an argument.
    #[error("{0}")]
    Input(String),
    /// Something failed while running: a backend, a kernel, the file system.
    #[error("{0}")]
    Runtime(String),
    /// The device context is lost (a sticky GPU error): this process can do no more GPU
    /// work; a supervising `tune --devices` restarts it.
    #[error("{0}")]
    ContextLost(String),
    /// The user stopped the run (Ctrl-C); what was finished is saved.
    #[error("{0}")]
    Interrupted(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Said by a backend's error when its device context is lost beyond the library's own
/// error names (`is_sticky` checks for both; the CPU backend's `cpu:test:sticky` double
/// says it).
pub const CONTEXT_LOST: &str = "device context lost";

/// Whether an error message is a GPU error after which the context can do no more work
/// (the CUDA guide's "sticky" ones, their HIP names, or CONTEXT_LOST).
pub fn is_sticky(message: &str) -> bool {
    [
        "CUDA_ERROR_ILLEGAL_ADDRESS",
        "CUDA_ERROR_INVALID_ADDRESS_SPACE",
        "CUDA_ERROR_LAUNCH_FAILED",
        "CUDA_ERROR_MISALIGNED_ADDRESS",
        "CUDA_ERROR_ILLEGAL_INSTRUCTION",
        "CUDA_ERROR_HARDWARE_STACK_ERROR",
        "CUDA_ERROR_INVALID_PC",
        "CUDA_ERROR_ECC_UNCORRECTABLE",
        "CUDA_ERROR_LAUNCH_TIMEOUT",
        "CUDA_ERROR_ASSERT",
        "hipErrorIllegalAddress",
        "hipErrorLaunchFailure",
        "hipErrorECCNotCorrectable",
        CONTEXT_LOST,
    ]
    .iter()
    .any(|k| message.contains(k))
}

impl Error {
    pub fn input(msg: impl Into<String>) -> Error {
        Error::Input(msg.into())
    }
    pub fn runtime(msg: impl Into<String>) -> Error {
        Error::Runtime(msg.into())
    }
    /// An input error located in a file: `path:line: field 'x': message`.
    pub fn at(path: &Path, line: usize, field: Option<&str>, msg: impl AsRef<str>) -> Error {
        let msg = msg.as_ref();
        match field {
            Some(f) => Error::Input(format!("{}:{line}: field '{f}': {msg}", path.display())),
            None => Error::Input(format!("{}:{line}: {msg}", path.display())),
        }
    }
    pub fn io(path: &Path, what: &str, e: std::io::Error) -> Error {
        match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::Input(format!("{}: cannot {what}: file not found", path.display()))
            }
            // A folder where a file belongs (or the reverse) is the caller's input.
            std::io::ErrorKind::IsADirectory | std::io::ErrorKind::NotADirectory => {
                Error::Input(format!("{}: cannot {what}: {e}", path.display()))
            }
            _ => Error::Runtime(format!("{}: cannot {what}: {e}", path.display())),
        }
    }
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Input(_) => 2,
            Error::Runtime(_) => 1,
            Error::Interrupted(_) => 130,
            Error::ContextLost(_) => 75,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sticky_errors_are_told_from_recoverable_ones() {
        assert!(is_sticky("bf16 TN m=32 n=6144 k=4096: cannot fill operands: CUDA driver: DriverError(CUDA_ERROR_ILLEGAL_INSTRUCTION, \"an illegal instruction was encountered\")"));
        assert!(is_sticky("hipErrorIllegalAddress"));
        assert!(is_sticky(&format!("x: {CONTEXT_LOST} (simulated)")));
        assert!(!is_sticky("DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")"));
        assert!(!is_sticky("cuda:wg:n32:g1:t1:s4:k2: wrong result at (3, 7)"));
    }
}
