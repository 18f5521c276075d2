//! One audit line: `Record::from_line` never panics; what reads re-encodes (URLs
//! redacted) to a line that reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paddock_audit::{redact_url, Event, Record, Target};

fn redacted(e: Event) -> Event {
    let fix = |t: &mut Target| {
        if let Target::HttpRequest { url, .. } = t {
            *url = redact_url(url);
        }
    };
    match e {
        Event::CallStart(mut c) => {
            fix(&mut c.target);
            Event::CallStart(c)
        }
        Event::CallEnd(mut c) => {
            fix(&mut c.call.target);
            Event::CallEnd(c)
        }
        other => other,
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Record::from_line(data) {
        let line = r.to_line().expect("a record encodes");
        assert!(!line.contains('\n'));
        let again = Record::from_line(line.as_bytes()).expect("an encoded record reads back");
        assert_eq!(again, Record { event: redacted(r.event.clone()), ..r });
    }
});
