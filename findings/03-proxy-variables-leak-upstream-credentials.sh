#!/bin/sh
# The caller's proxy variables carry the upstream's password. Only `*_proxy` names were
# dropped, and only when the policy allows network: `npm_config_https-proxy` (npm reads
# it as `https-proxy`) passed a preset's `npm_config_*` glob, and with no network every
# proxy variable passed a matching glob. SECURITY.md: upstream credentials "the child
# never sees them". Cause: crates/paddock/src/spec.rs build_with (retain only in the
# network branch, `_proxy` suffix only). Fixed: `is_proxy_var` (`_proxy`/`-proxy`, any
# case), dropped always.
P=${PADDOCK:-paddock}
S=$(mktemp -d); mkdir -p "$S/ws"; cd "$S/ws" || exit 1
env -i PATH=/usr/bin:/bin PADDOCK_STATE_DIR=$S/st 'npm_config_https-proxy=http://corp:hunter2@127.0.0.1:3128' \
  "$P" run --policy coding-agent -- /usr/bin/env | grep -i proxy
printf 'version = 1\n[filesystem]\nread = ["/usr","/bin","/lib","/lib64","/etc"]\n[env]\npass = ["PATH","CARGO_*"]\n' > "$S/p.toml"
env -i PATH=/usr/bin:/bin PADDOCK_STATE_DIR=$S/st CARGO_HTTP_PROXY=http://corp:hunter2@127.0.0.1:3128 \
  "$P" run --policy "$S/p.toml" -- /usr/bin/env | grep -i proxy
echo "(before the fix: hunter2 shown; after: nothing, or only paddock's own proxy)"
