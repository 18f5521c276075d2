#!/bin/sh
# `paddock -v run` printed the enforcement report's details raw; the mounts detail names
# a deny-glob match that is a symlink, a name the agent chose in an earlier call: OSC/CSI
# reach the terminal. Cause: crates/paddock-cli/src/run.rs print_report / print_explain
# (and the LayerUnavailable message) used `l.detail` unescaped. Fixed: Escaped(..).
P=${PADDOCK:-paddock}
S=$(mktemp -d); mkdir -p "$S/ws"; cd "$S/ws" || exit 1
cat > "$S/pol.toml" <<'T'
version = 1
[filesystem]
read = ["/usr", "/etc", "/bin", "/lib", "/lib64"]
write = ["${WORKSPACE}"]
deny = ["${WORKSPACE}/**/*.pem"]
T
PADDOCK_STATE_DIR=$S/st "$P" run --policy "$S/pol.toml" -- sh -c 'ln -s /etc/hostname "$(printf "evil\033]0;PWNED\007\033[2J.pem")"'
PADDOCK_STATE_DIR=$S/st "$P" -v run --policy "$S/pol.toml" -- /bin/true 2>&1 | grep mounts | cat -v
echo "(before the fix: ^[]0;PWNED^G^[[2J raw; after: \\x1b]0;PWNED\\x07\\x1b[2J)"
