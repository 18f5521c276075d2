#!/bin/sh
# A hard link to $STATE/audit.jsonl inside the workspace, made before the run (by anyone
# with both names: an earlier unsandboxed step, a backup tool): the log's path is masked,
# the link is not, and a sandboxed call empties the whole log through it. A chain cannot
# show records cut from the end, so the evidence of every earlier call is gone.
# SECURITY.md documents pre-made hard links as grants, but DESIGN.md says paddock's own
# state is never in a view. Cause: crates/paddock-audit/src/writer.rs AuditLog::open_with
# accepted a log with nlink > 1. Fixed: refused, naming the problem.
P=${PADDOCK:-paddock}
S=$(mktemp -d); mkdir -p "$S/ws"; cd "$S/ws" || exit 1
PADDOCK_STATE_DIR=$S/st "$P" run -- /bin/true
ln "$S/st/audit.jsonl" "$S/ws/notes.txt"
PADDOCK_STATE_DIR=$S/st "$P" run -- /bin/sh -c ': > notes.txt; echo cut'
echo "log lines now: $(wc -l < "$S/st/audit.jsonl") (before the fix: the old records are gone; after: the run is refused)"
