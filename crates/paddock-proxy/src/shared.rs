//! What every connection task shares: the gate, the event sink, the limits and the
//! tunnel budget; and the slot a CONNECT handler leaves its tunnel in.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Semaphore;

use crate::config::ProxyConfig;
use crate::event::{Draft, EventGuard, EventSink, Kind};
use crate::gate::Gate;

/// What every connection task shares.
pub(crate) struct Shared {
    pub gate: Gate,
    pub sink: EventSink,
    pub cfg: ProxyConfig,
    pub tunnels: Arc<Semaphore>,
    /// Interception, when configured.
    pub intercept: Option<Arc<crate::intercept::Engine>>,
}

impl Shared {
    /// A fresh event guard for a request that started at `start`.
    pub(crate) fn guard(&self, start: Instant, kind: Kind) -> EventGuard {
        EventGuard::new(self.sink.clone(), start, Draft::new(kind))
    }
}

/// A tunnel to run after hyper hands over the upgraded connection.
pub(crate) type TunnelFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
/// Where the CONNECT handler leaves its tunnel for the connection task.
pub(crate) type TunnelSlot = Arc<Mutex<Option<TunnelFuture>>>;
