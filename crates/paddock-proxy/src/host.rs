//! Host normalisation: the one spelling of a host that the gate decides on, resolves
//! and reports.
//!
//! Applied first, to the host of every request target, before the policy is asked. It is
//! paddock-policy's normaliser (one piece of code for the policy's patterns and the
//! proxy's targets): a name is lowercased, loses one trailing dot and becomes punycode;
//! IP literals become [`Host::Ip`]; anything odd (spaces, `%`, `@`, `\\`, empty labels,
//! numeric names such as `127.1` that a resolver might read as an address) is refused.

pub use paddock_policy::{normalize_host as normalise_host, Host, HostError};
