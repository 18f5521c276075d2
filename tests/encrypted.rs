//! End-to-end: an encrypted (fscrypt) directory locked when a view was walked shows its
//! real names once its key is added, with no inotify event and no change of its ctime or
//! mtime. Found by an attack: under the embedded default policy, `vault/.env` in the
//! workspace (denied by `${WORKSPACE}/**/.env`) was read
//! - by a session's call in a zygote started while `vault` was locked (its view stamp
//!   vouched for the view walked then), and
//! - by a `paddock run` whose view took `vault`'s listing from the view cache kept by a
//!   walk made while it was locked.
//!
//! Now an encrypted directory is never vouched for by a view stamp (the next call gets a
//! new zygote) nor kept in the view cache.
//!
//! The same unlock, seen by the scans for glob matches before and after a call: a listing
//! kept while the directory was locked (encoded names) stood for it at the next call's
//! start, and the scan after that call, reading it again once the call had changed it,
//! took the user's own `vault/.env` for a match the call had made and moved it aside. Now
//! no scan keeps an encrypted directory's listing either. The workspace is an ext4 image made with
//! `-O encrypt`, loop-mounted over the fixture's workspace (so this runs as root, and the
//! calls as root and as uid 65534); the key is added and removed with the fscrypt ioctls.

#[macro_use]
mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

both_users!(
    a_directory_unlocked_after_its_walk_is_still_masked,
    a_match_in_a_directory_unlocked_after_a_scan_is_not_moved_aside
);

/// The fscrypt ioctls (`linux/fscrypt.h`): `add MNT` prints the key's identifier, `remove
/// MNT ID`, `set DIR ID` (a v2 policy on an empty directory: AES-256-XTS, AES-256-CTS).
const FSCRYPT: &str = r#"
import fcntl, os, struct, sys
def IOC(d, t, nr, size): return (d << 30) | (size << 16) | (ord(t) << 8) | nr
ADD = IOC(3, 'f', 23, 80); REMOVE = IOC(3, 'f', 24, 64); SET = IOC(2, 'f', 19, 12)
cmd, path = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_RDONLY)
if cmd == "add":
    buf = bytearray(struct.pack("II32sII32x", 2, 0, b"", 64, 0) + bytes(range(64)))
    fcntl.ioctl(fd, ADD, buf, True)
    print(bytes(buf[8:24]).hex())
elif cmd == "remove":
    buf = bytearray(struct.pack("II16s16sI20x", 2, 0, bytes.fromhex(sys.argv[3]), b"", 0))
    fcntl.ioctl(fd, REMOVE, buf, True)
elif cmd == "set":
    fcntl.ioctl(fd, SET, struct.pack("BBBB4x16s", 2, 1, 4, 0, bytes.fromhex(sys.argv[3])))
"#;

/// Runs the fscrypt helper as root; its output.
fn fscrypt(args: &[&str]) -> String {
    let o = Command::new("python3").args(py(FSCRYPT, args).into_iter().skip(1)).output().expect("python3");
    assert!(o.status.success(), "fscrypt {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Root's command, which must succeed.
fn must(cmd: &mut Command) {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(o.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&o.stderr));
}

/// An ext4 image with encryption, loop-mounted at `at`; unmounted when dropped.
struct Image(PathBuf);

impl Image {
    fn mount(file: &Path, at: &Path) -> Image {
        must(Command::new("truncate").args(["-s", "32M"]).arg(file));
        must(Command::new("mkfs.ext4").args(["-q", "-O", "encrypt"]).arg(file));
        must(Command::new("mount").args(["-o", "loop"]).arg(file).arg(at));
        Image(at.to_path_buf())
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        // Lazily: a process of the ended session may still hold it for a moment.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The fixture's workspace on an encrypted image, unlocked: `vault/.env` (denied by the
/// default policy's `${WORKSPACE}/**/.env`) holds the returned secret in the encrypted
/// `vault`, both the user's. Also the image and the key's identifier.
fn encrypted_workspace(f: &Fixture, user: User) -> (Image, String, String) {
    let image = Image::mount(&f.root.join("ws.img"), &f.ws);
    let _ = std::fs::remove_dir(f.ws.join("lost+found"));
    chown(&f.ws, user.uid());
    chmod(&f.ws, 0o755);
    let id = fscrypt(&["add", &f.ws.to_string_lossy()]);
    let vault = f.ws.join("vault");
    std::fs::create_dir(&vault).unwrap();
    fscrypt(&["set", &vault.to_string_lossy(), &id]);
    let secret = format!("SECRET=vault-{}", unique());
    write(&vault.join(".env"), &secret, 0o644);
    for p in [&vault, &vault.join(".env")] {
        chown(p, user.uid());
    }
    chmod(&vault, 0o755);
    (image, id, secret)
}

fn a_directory_unlocked_after_its_walk_is_still_masked(user: User) {
    let f = Fixture::new(user);
    let (_image, id, secret) = encrypted_workspace(&f, user);
    let ws = f.ws.to_string_lossy().into_owned();
    let vault = f.ws.join("vault");
    let read = "cat vault/.env; echo rc=$?";
    // Control: unlocked, the rule masks it (a state directory of its own: no view cache
    // of an unlocked walk for what follows).
    let control = f.root.join("state-control");
    std::fs::create_dir(&control).unwrap();
    chown(&control, user.uid());
    let env = [("PADDOCK_STATE_DIR", control.to_str().unwrap())];
    let o = f.launch(&default_argv(&f, &f.ws, &["sh", "-c", read]), &env, None);
    assert!(!o.out().contains(&secret) && o.out().contains("rc=1"), "unlocked, masked\n{o}");

    fscrypt(&["remove", &ws, &id]);
    assert!(!vault.join(".env").exists(), "locked: its names are encoded");
    wait_past_ctime_margin(&[f.ws.clone(), vault.clone()]);
    // A walk while locked: the view cache of this state directory would hold its listing.
    let o = run_default_in(&f, &f.ws, &["sh", "-c", read]);
    assert!(o.out().contains("rc=1"), "locked\n{o}");
    let mut s = McpSession::start(&f, None);
    for _ in 0..2 {
        let a = s.call("ls vault >/dev/null; echo warm");
        assert!(a.contains("warm"), "{a}");
    }

    fscrypt(&["add", &ws]);
    assert!(vault.join(".env").exists(), "unlocked");
    let a = s.call(read);
    s.end();
    assert!(!a.contains(&secret) && a.contains("rc=1"), "the session's call after the unlock: {a}");
    let o = run_default_in(&f, &f.ws, &["sh", "-c", read]);
    assert!(!o.out().contains(&secret) && o.out().contains("rc=1"), "a run with the kept view cache\n{o}");
    fscrypt(&["remove", &ws, &id]);
}

fn a_match_in_a_directory_unlocked_after_a_scan_is_not_moved_aside(user: User) {
    let f = Fixture::new(user);
    let (_image, id, secret) = encrypted_workspace(&f, user);
    let ws = f.ws.to_string_lossy().into_owned();
    let vault = f.ws.join("vault");
    fscrypt(&["remove", &ws, &id]);
    wait_past_ctime_margin(&[f.ws.clone(), vault.clone()]);
    // Locked: each run's scans list `vault` (encoded names) and would keep that listing.
    for _ in 0..2 {
        let o = run_default_in(&f, &f.ws, &["true"]);
        assert_eq!(o.code(), 0, "locked\n{o}");
    }
    fscrypt(&["add", &ws]);
    // Unlocked, a call that changes `vault` (so the scan after it reads it again).
    let o = run_default_in(&f, &f.ws, &["sh", "-c", "echo x > vault/new; echo rc=$?"]);
    assert!(o.out().contains("rc=0"), "the call writes in vault\n{o}");
    assert!(!o.err().contains("moved aside"), "the user's own vault/.env was there at the start\n{o}");
    assert_eq!(std::fs::read_to_string(vault.join(".env")).unwrap(), secret, "vault/.env left where it was\n{o}");
    assert_eq!(o.code(), 0, "{o}");
    fscrypt(&["remove", &ws, &id]);
}
