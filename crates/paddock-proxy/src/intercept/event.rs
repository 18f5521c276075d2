//! The record of one request seen in plain text: an [`HttpRecord`] collects it while the
//! request runs and hands the [`HttpEvent`] to [`Interceptor::record`] once, when it is
//! dropped (after both bodies ended or were dropped, or when the request was refused).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{Deny, HttpEvent, Interceptor};

/// Collects one request's record; reports it on drop.
pub(crate) struct HttpRecord {
    interceptor: Arc<dyn Interceptor>,
    /// Request body bytes.
    pub(crate) up: Arc<AtomicU64>,
    /// Response body bytes.
    pub(crate) down: Arc<AtomicU64>,
    draft: Mutex<HttpEvent>,
}

impl HttpRecord {
    pub(crate) fn new(
        interceptor: Arc<dyn Interceptor>,
        method: &str,
        host: &str,
        port: u16,
        path_and_query: &str,
    ) -> HttpRecord {
        HttpRecord {
            interceptor,
            up: Arc::default(),
            down: Arc::default(),
            draft: Mutex::new(HttpEvent {
                method: method.to_owned(),
                host: host.to_owned(),
                port,
                path: redact_path(path_and_query),
                status: None,
                bytes_up: 0,
                bytes_down: 0,
                secret: None,
                denied: None,
                error: None,
            }),
        }
    }

    fn update(&self, f: impl FnOnce(&mut HttpEvent)) {
        f(&mut self.draft.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Whether the request, let through, would be refused now ([`Interceptor::still`]).
    pub(crate) fn refused_now(&self) -> Option<Deny> {
        let event = self.draft.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if event.denied.is_some() {
            return None; // refused already: nothing of it went upstream
        }
        self.interceptor.still(&event)
    }

    pub(crate) fn secret(&self, secret: Option<String>) {
        self.update(|e| e.secret = secret);
    }

    pub(crate) fn denied(&self, deny: Deny) {
        self.update(|e| e.denied = Some(deny));
    }

    pub(crate) fn status(&self, status: u16) {
        self.update(|e| e.status = Some(status));
    }

    /// An upstream failure; a status recorded before it (a response head that came, then a
    /// body that broke) stays.
    pub(crate) fn error(&self, error: String) {
        self.update(|e| e.error = Some(error));
    }
}

impl Drop for HttpRecord {
    fn drop(&mut self) {
        let mut event = std::mem::replace(
            self.draft.get_mut().unwrap_or_else(|p| p.into_inner()),
            HttpEvent {
                method: String::new(),
                host: String::new(),
                port: 0,
                path: String::new(),
                status: None,
                bytes_up: 0,
                bytes_down: 0,
                secret: None,
                denied: None,
                error: None,
            },
        );
        event.bytes_up = self.up.load(Ordering::Relaxed);
        event.bytes_down = self.down.load(Ordering::Relaxed);
        tracing::debug!(
            method = %event.method, host = %event.host, port = event.port, path = %event.path,
            status = ?event.status, up = event.bytes_up, down = event.bytes_down,
            secret = ?event.secret, denied = ?event.denied.as_ref().map(|d| &d.rule), error = ?event.error,
            "http request"
        );
        self.interceptor.record(event);
    }
}

/// A path for the record: the query keeps its names and drops its values
/// (`/search?q=secret&page=2` → `/search?q=&page=`); a fragment is dropped.
pub fn redact_path(path_and_query: &str) -> String {
    let without_fragment = path_and_query.split('#').next().unwrap_or_default();
    let Some((path, query)) = without_fragment.split_once('?') else {
        return without_fragment.to_owned();
    };
    let names: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) => format!("{name}="),
            None => pair.to_owned(),
        })
        .collect();
    format!("{path}?{}", names.join("&"))
}

#[cfg(test)]
mod tests {
    use super::redact_path;

    #[test]
    fn query_values_are_dropped() {
        assert_eq!(redact_path("/search?q=secret&page=2"), "/search?q=&page=");
        assert_eq!(redact_path("/a/b"), "/a/b");
        assert_eq!(redact_path("/x?flag&k=v#frag"), "/x?flag&k=");
        assert_eq!(redact_path("/x?"), "/x?");
    }
}
