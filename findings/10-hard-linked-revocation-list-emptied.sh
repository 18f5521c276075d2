#!/bin/sh
# A hard link to $STATE/revocations.toml inside the workspace (made before the run): the
# list's path is masked, the link is not; a sandboxed call rewrites the list in place and
# every revocation is gone for every later call (a running serve re-reads it too).
# Cause: crates/paddock-audit/src/revocations.rs read_list accepted nlink > 1.
# Fixed: a list with other names cannot be used (every call denied, 78, "hard links").
P=${PADDOCK:-paddock}
S=$(mktemp -d); mkdir -p "$S/ws"; cd "$S/ws" || exit 1
PADDOCK_STATE_DIR=$S/st "$P" revoke command:/bin/false >/dev/null
PADDOCK_STATE_DIR=$S/st "$P" run -- /bin/false; echo "control rc=$? (77: revoked)"
ln "$S/st/revocations.toml" "$S/ws/list.txt"
PADDOCK_STATE_DIR=$S/st "$P" run -- /bin/sh -c "echo '# empty' > list.txt"
PADDOCK_STATE_DIR=$S/st "$P" run -- /bin/false; echo "after rc=$? (before the fix: 1, the revoked program ran; after: 78)"
