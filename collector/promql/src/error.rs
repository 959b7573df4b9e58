//! Query errors, classified the way Prometheus's API reports them.

use std::fmt;

/// Which `errorType` and HTTP status an error maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The query or its parameters are malformed (HTTP 400, `bad_data`).
    BadData,
    /// The query is valid but cannot be evaluated (HTTP 422, `execution`).
    Execution,
    /// The query ran out of time (HTTP 503, `timeout`).
    Timeout,
    /// The store failed (HTTP 500, `internal`).
    Internal,
    /// The query needs native histograms, which are not stored yet
    /// (HTTP 422, `execution`).
    NativeHistogram,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub struct QueryError {
    pub kind: ErrorKind,
    pub message: String,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl QueryError {
    pub fn bad_data(message: impl Into<String>) -> Self {
        QueryError {
            kind: ErrorKind::BadData,
            message: message.into(),
        }
    }

    pub fn execution(message: impl Into<String>) -> Self {
        QueryError {
            kind: ErrorKind::Execution,
            message: message.into(),
        }
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        QueryError {
            kind: ErrorKind::Timeout,
            message: message.into(),
        }
    }

    pub fn native_histogram(what: &str) -> Self {
        QueryError {
            kind: ErrorKind::NativeHistogram,
            message: format!(
                "{what} holds native histogram samples, which this engine does not evaluate yet"
            ),
        }
    }

    /// Prometheus's `errorType` for the API envelope.
    pub fn error_type(&self) -> &'static str {
        match self.kind {
            ErrorKind::BadData => "bad_data",
            ErrorKind::Execution | ErrorKind::NativeHistogram => "execution",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Internal => "internal",
        }
    }

    /// The HTTP status Prometheus answers with for this kind.
    pub fn http_status(&self) -> u16 {
        match self.kind {
            ErrorKind::BadData => 400,
            ErrorKind::Execution | ErrorKind::NativeHistogram => 422,
            ErrorKind::Timeout => 503,
            ErrorKind::Internal => 500,
        }
    }
}

pub type Result<T> = std::result::Result<T, QueryError>;
