//! The proxy's limits and timeouts ([`ProxyConfig`]).

use std::time::Duration;

/// Limits and timeouts of one proxy.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Budget for name resolution plus TCP connect to the upstream (all
    /// candidate addresses together). Past it the client gets 504.
    pub connect_timeout: Duration,
    /// A tunnel with no bytes in either direction for this long is closed; a
    /// forwarded request whose upstream sends no response head for this long
    /// gets 504.
    pub idle_timeout: Duration,
    /// How long a client may take to send a request head (also the idle
    /// limit between keep-alive requests).
    pub header_timeout: Duration,
    /// Concurrent CONNECT tunnels; past it a CONNECT gets 503.
    pub max_tunnels: usize,
    /// Concurrent client connections; past it a new connection gets 503 and
    /// is closed.
    pub max_connections: usize,
    /// Relay buffer per direction of a tunnel, in bytes (the pipe size when
    /// splicing).
    pub buffer_size: usize,
    /// Linux: relay tunnels with `splice(2)` through a pipe, so tunnel bytes
    /// never enter user space. `false` forces the user-space copy
    /// (`copy_bidirectional_with_sizes`). Ignored elsewhere.
    pub zero_copy: bool,
    /// Upstream HTTP proxies that allowed connections go through ([`crate::Upstream`]);
    /// none by default.
    pub upstream: crate::Upstream,
    /// TLS interception ([`crate::Intercept`]); `None` (the default): no interception, no
    /// peeking, tunnels are opaque byte relays.
    pub intercept: Option<crate::Intercept>,
}

impl Default for ProxyConfig {
    fn default() -> ProxyConfig {
        ProxyConfig {
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            header_timeout: Duration::from_secs(30),
            max_tunnels: 256,
            max_connections: 1024,
            buffer_size: 256 * 1024,
            zero_copy: true,
            upstream: crate::Upstream::none(),
            intercept: None,
        }
    }
}
