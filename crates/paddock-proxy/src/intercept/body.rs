//! A relayed body that counts its data bytes into several counters (the connection's
//! event and the request's record) and keeps those records open until it is done.

use std::any::Any;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

/// A counted, relayed body.
pub(crate) struct Metered {
    inner: Incoming,
    counters: Vec<Arc<AtomicU64>>,
    _hold: Vec<Arc<dyn Any + Send + Sync>>,
}

impl Metered {
    pub(crate) fn new(
        inner: Incoming,
        counters: Vec<Arc<AtomicU64>>,
        hold: Vec<Arc<dyn Any + Send + Sync>>,
    ) -> Metered {
        Metered { inner, counters, _hold: hold }
    }
}

impl Body for Metered {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                for c in &this.counters {
                    c.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
            }
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
