//! [`Cause`]: the underlying error a classified failure came from ([`crate::store::StoreError`],
//! [`crate::queue::QueueError`], [`crate::client::CallError`]), kept as its `source()` so a log
//! line or a start error can show the whole chain, while callers act on the classification.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// An underlying error, shared so the classified error stays `Clone`.
#[derive(Clone)]
pub struct Cause(Arc<dyn Error + Send + Sync>);

impl Cause {
    pub fn new(error: impl Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(error))
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Error for Cause {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

/// Causes compare equal: what a caller acts on, and a test compares, is the classification
/// and its detail; the cause is context for the logs.
impl PartialEq for Cause {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Cause {}
