#!/bin/sh
# A FIFO (or a symlink to /dev/zero) in place of $STATE/revocations.toml: every
# decision hung (blocking read_to_string waits for a writer / reads forever) instead of
# denying with 78. Fixed: crates/paddock-audit/src/revocations.rs read_list (O_NONBLOCK,
# regular files only, 16 MiB cap).
P=${PADDOCK:-paddock}
S=$(mktemp -d); mkdir -p "$S/ws"; cd "$S/ws" || exit 1
PADDOCK_STATE_DIR=$S/st timeout 10 "$P" check -- /bin/true; echo "control rc=$? (0)"
mkfifo "$S/st/revocations.toml"
PADDOCK_STATE_DIR=$S/st timeout 10 "$P" check -- /bin/true; echo "fifo rc=$? (124 = hung; fixed: 78)"
rm "$S/st/revocations.toml"; ln -s /dev/zero "$S/st/revocations.toml"
PADDOCK_STATE_DIR=$S/st timeout 10 "$P" check -- /bin/true; echo "/dev/zero rc=$? (124 = hung; fixed: 78)"
