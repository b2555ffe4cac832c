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
