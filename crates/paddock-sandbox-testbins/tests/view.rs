//! The view's hidden paths: masked whatever read and write grant, each as root and as uid
//! 65534, with the control that the same reads work without them.

mod common;

use common::{Scratch, User};

both_users!(hidden_paths_are_masked_whatever_the_grants, |user, name| {
    let s = Scratch::new(name, user);
    std::fs::create_dir_all(s.ws.join("state")).unwrap();
    std::fs::write(s.ws.join("state/audit.jsonl"), "HIDDEN-DIR-SECRET\n").unwrap();
    std::fs::write(s.ws.join("token"), "HIDDEN-FILE-SECRET\n").unwrap();
    if user == User::Nobody {
        for p in ["state", "state/audit.jsonl", "token"] {
            common::chown(&s.ws.join(p));
        }
    }
    let script = "cat state/audit.jsonl; cat token; echo x >> token; exit 0";
    // Control: the workspace is a write path, so both are readable without hiding.
    let r = s.run(&s.sh(script));
    assert!(r.stdout.contains("HIDDEN-DIR-SECRET") && r.stdout.contains("HIDDEN-FILE-SECRET"), "{r:#?}");
    std::fs::write(s.ws.join("token"), "HIDDEN-FILE-SECRET\n").unwrap();

    let mut spec = s.sh(script);
    spec.hidden_paths = vec![s.ws.join("state"), s.ws.join("token"), s.ws.join("absent")];
    let r = s.run(&spec);
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(!r.stdout.contains("HIDDEN"), "{r:#?}");
    assert_eq!(std::fs::read_to_string(s.ws.join("token")).unwrap(), "HIDDEN-FILE-SECRET\n");
});
