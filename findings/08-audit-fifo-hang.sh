#!/bin/sh
# A FIFO as the audit log: `run` refuses it, but `audit verify` / `audit review` opened it
# for reading and waited for a writer forever. Cause: crates/paddock-audit/src/reader.rs
# LineReader::open (File::open). Fixed: O_NONBLOCK, regular files only.
P=${PADDOCK:-paddock}
S=$(mktemp -d); mkdir -p "$S/st"; cd "$S" || exit 1
mkfifo "$S/st/audit.jsonl"
PADDOCK_STATE_DIR=$S/st timeout 10 "$P" audit verify; echo "verify rc=$? (124 = hung; fixed: an error)"
