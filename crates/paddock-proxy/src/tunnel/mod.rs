//! What every tunnel that stays opaque (CONNECT or SOCKS5, not intercepted) is checked
//! for, before any byte of the client reaches the upstream: the tunnel was decided for
//! one host, so the names its traffic carries in the clear must be that host's.
//!
//! - A TLS ClientHello: its server name (SNI), when it has one, must be the tunnel's
//!   target ([`first`], [`sni`]); under interception the [`Interceptor`](crate::Interceptor)
//!   sees it too. Otherwise `CONNECT allowed.example` with SNI `denied.example` would reach
//!   a denied name on any front end that serves both.
//! - Plain HTTP/1 (the first line read as a lenient server would: empty lines before it,
//!   a method in any case, a tab): served request by request ([`http`]); each request's
//!   `Host` and absolute URI must name the target.
//! - Anything else is relayed as it is. A first line that arrives unfinished (`ping`,
//!   `hello there`) is sent on as it comes, so that a client waiting for its answer is
//!   not held up, and watched until it ends: should it end as a request line, the
//!   tunnel is closed before the end of that line goes on (no server takes a request
//!   from a line that never ended).
//!
//! What stays out of reach: names inside TLS (a `Host` header under an SNI that matches,
//! or an encrypted ClientHello) can only be checked by interception (`[[network.http]]`).

pub(crate) mod first;
pub(crate) mod http;
mod sni;

pub(crate) use first::{check, First};
