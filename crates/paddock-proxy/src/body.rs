//! The one body type the proxy sends: a short text (refusals, tunnel
//! answers) or a relayed body whose data bytes are counted into an event.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::event::EventGuard;

/// A response or upstream request body.
pub(crate) enum ProxyBody {
    /// A complete body (possibly empty).
    Full(Option<Bytes>),
    /// A relayed body; its data bytes are added to `counter`, and `guard`
    /// keeps the connection's event open until the body is done or dropped.
    Relayed { inner: Incoming, counter: Arc<AtomicU64>, _guard: Arc<EventGuard> },
    /// A relayed body counted into several counters ([`crate::intercept`]).
    Metered(crate::intercept::Metered),
}

impl ProxyBody {
    pub(crate) fn text(s: String) -> ProxyBody {
        ProxyBody::Full(Some(Bytes::from(s)))
    }

    pub(crate) fn empty() -> ProxyBody {
        ProxyBody::Full(None)
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ProxyBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ProxyBody::Relayed { inner, counter, .. } => {
                let polled = Pin::new(inner).poll_frame(cx);
                if let Poll::Ready(Some(Ok(frame))) = &polled {
                    if let Some(data) = frame.data_ref() {
                        counter.fetch_add(data.len() as u64, Ordering::Relaxed);
                    }
                }
                polled
            }
            ProxyBody::Metered(m) => Pin::new(m).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(b) => b.is_none(),
            ProxyBody::Relayed { inner, .. } => inner.is_end_stream(),
            ProxyBody::Metered(m) => m.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ProxyBody::Full(None) => SizeHint::with_exact(0),
            ProxyBody::Relayed { inner, .. } => inner.size_hint(),
            ProxyBody::Metered(m) => m.size_hint(),
        }
    }
}
