#!/bin/sh
# `paddock -vv mcp` (or PADDOCK_LOG=debug): rmcp's debug line quotes the MCP client's
# protocolVersion with Display; tracing-subscriber 0.3.23 (no ansi feature) wrote it raw:
# the client (the agent) reaches the person's terminal with ESC/BEL/C1/bidi.
# Cause: crates/paddock-cli/src/setup.rs init_logging `.with_writer(std::io::stderr)`.
# Fixed: EscapingStderr escapes control, bidi and invisible characters in every log line.
P=${PADDOCK:-paddock}
S=$(mktemp -d); cd "$S" || exit 1
printf '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"x\\u001b]0;PWNED\\u0007\\u009b2J","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}\n' |
  PADDOCK_STATE_DIR=$S/st "$P" -vv mcp 2>&1 >/dev/null | grep client_requested | cat -v
echo "(before the fix: ^[]0;PWNED^G raw; after: \\x1b]0;PWNED\\x07)"
