//! A relayed body that counts its data bytes into several counters (the connection's
//! event and the request's record) and keeps those records open until it is done.

use std::any::Any;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::HttpRecord;

/// A counted, relayed body.
pub(crate) struct Metered {
    inner: Incoming,
    counters: Vec<Arc<AtomicU64>>,
    _hold: Vec<Arc<dyn Any + Send + Sync>>,
    /// Where a failure of the body is noted.
    record: Option<Arc<HttpRecord>>,
}

impl Metered {
    pub(crate) fn new(
        inner: Incoming,
        counters: Vec<Arc<AtomicU64>>,
        hold: Vec<Arc<dyn Any + Send + Sync>>,
        record: Option<Arc<HttpRecord>>,
    ) -> Metered {
        Metered { inner, counters, _hold: hold, record }
    }
}

impl Body for Metered {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    for c in &this.counters {
                        c.fetch_add(data.len() as u64, Ordering::Relaxed);
                    }
                }
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(r) = &this.record {
                    r.error(format!("body failed: {e}"));
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
