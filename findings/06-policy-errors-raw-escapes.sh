#!/bin/sh
# Policy errors and lint warnings quote the policy file raw; a project's own policy in the
# workspace is text the agent can write (TOML "\u001b" escapes make raw ESC/BEL/C1).
# Cause: crates/paddock-cli/src/setup.rs load_policy_only `eprintln!("{e}")`,
# crates/paddock-cli/src/policy_cmd.rs lint (errors and warnings), state.rs
# apply_revocations. Fixed: setup::eprint_lines escapes each line.
P=${PADDOCK:-paddock}
S=$(mktemp -d); cd "$S" || exit 1
printf 'version = 1\n[sandbox]\n"\\u001b]0;PWNED\\u0007\\u001b[2Jkey" = 1\n' > project.toml
"$P" policy lint project.toml 2>&1 | cat -v
echo "(before the fix: ^[]0;PWNED^G^[[2J raw; after: \\x1b]0;PWNED\\x07\\x1b[2J)"
