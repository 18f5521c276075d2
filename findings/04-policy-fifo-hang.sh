#!/bin/sh
# A FIFO as --policy or as an `extends` entry (e.g. a workspace file the agent replaced):
# paddock hung in open(2) waiting for a writer. Cause: crates/paddock-policy/src/load.rs
# read_capped and crates/paddock-cli/src/setup.rs policy_file_readable opened before
# checking the file type. Fixed: regular files only, checked before the open.
P=${PADDOCK:-paddock}
S=$(mktemp -d); cd "$S" || exit 1
printf 'version = 1\nextends = ["base.toml"]\n' > top.toml; mkfifo base.toml
PADDOCK_STATE_DIR=$S/st timeout 10 "$P" check --policy top.toml -- /bin/true; echo "extends fifo rc=$? (124 = hung; fixed: 78)"
PADDOCK_STATE_DIR=$S/st timeout 10 "$P" check --policy ./base.toml -- /bin/true; echo "--policy fifo rc=$? (124 = hung; fixed: 78)"
