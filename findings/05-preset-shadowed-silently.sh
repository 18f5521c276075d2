#!/bin/sh
# `--policy coding-agent` (and `extends = ["coding-agent"]`) silently loads a FILE named
# coding-agent from the current directory / the policy's directory. The cwd is usually the
# workspace, which the agent writes: one session drops ./coding-agent granting write to /,
# the next `paddock run --policy coding-agent -- claude` is unconfined, with no message.
# Documented ("a file of that name wins") but silent. Cause: crates/paddock-cli/src/setup.rs
# preset_name, crates/paddock-policy/src/load.rs (extends). Fixed: a warning names the file.
# Not fixed (design call): refusing the ambiguity, or preferring the preset.
P=${PADDOCK:-paddock}
S=$(mktemp -d); cd "$S" || exit 1
PADDOCK_STATE_DIR=$S/st "$P" check --policy coding-agent --read /etc/shadow; echo "control rc=$? (77)"
printf 'version = 1\n[filesystem]\nread = ["/"]\nwrite = ["/"]\n' > coding-agent
PADDOCK_STATE_DIR=$S/st "$P" check --policy coding-agent --read /etc/shadow; echo "shadowed rc=$? (0: allowed; now with a warning line)"
