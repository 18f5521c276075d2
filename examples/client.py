#!/usr/bin/env python3
"""A small client of paddock's HTTP API (`paddock serve`), standard library only.

It reads the bearer token from the token file, POSTs one tool call to /v1/calls (or
/v1/check with --check), and prints the outcome. Its exit code is the call's: the
program's own, 77 when paddock denied the call, 1 on an HTTP error.

    paddock serve &                                     # 127.0.0.1:7878, token in $STATE/token
    python3 examples/client.py -- git status            # a command
    python3 examples/client.py --read src/main.rs       # read_file
    python3 examples/client.py --write notes.txt --content 'hello'
    python3 examples/client.py --url https://example.org --method GET   # http_request
    python3 examples/client.py --check -- rm -rf /      # decide only
    python3 examples/client.py --socket /run/user/1000/paddock.sock -- ls   # paddock serve --socket
    python3 examples/client.py --json -- ls             # print the raw outcome JSON

The token file is --token-file, else $PADDOCK_STATE_DIR/token, else
$XDG_STATE_HOME/paddock/token, else ~/.local/state/paddock/token.
"""

import argparse
import http.client
import json
import os
import socket
import sys


def default_token_file():
    if os.environ.get("PADDOCK_STATE_DIR"):
        return os.path.join(os.environ["PADDOCK_STATE_DIR"], "token")
    if os.environ.get("XDG_STATE_HOME"):
        return os.path.join(os.environ["XDG_STATE_HOME"], "paddock", "token")
    return os.path.expanduser("~/.local/state/paddock/token")


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP/1.1 over a unix socket (`paddock serve --socket PATH`)."""

    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def request(args, path, payload):
    token = open(args.token_file, encoding="utf-8").read().strip()
    if args.socket:
        conn = UnixHTTPConnection(args.socket, args.timeout)
    else:
        host, _, port = args.listen.rpartition(":")
        conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=args.timeout)
    body = json.dumps(payload).encode()
    # No Origin header (the server refuses those); Host is the loopback address we dial.
    conn.request("POST", path, body=body, headers={
        "Authorization": "Bearer " + token,
        "Content-Type": "application/json",
    })
    resp = conn.getresponse()
    data = resp.read().decode("utf-8", "replace")
    conn.close()
    return resp.status, data


def build_call(args):
    if args.read:
        return {"tool": "read_file", "path": args.read}
    if args.write:
        return {"tool": "write_file", "path": args.write, "content": args.content or ""}
    if args.url:
        call = {"tool": "http_request", "url": args.url, "method": args.method}
        if args.data is not None:
            call["body"] = args.data
        return call
    if not args.argv:
        sys.exit("client.py: give a command after --, or --read, --write or --url")
    call = {"tool": "command", "argv": args.argv}
    if args.cwd:
        call["cwd"] = args.cwd
    if args.stdin:
        call["stdin"] = sys.stdin.read()
    return call


def main():
    p = argparse.ArgumentParser(description="Send one tool call to paddock serve.")
    p.add_argument("--listen", default="127.0.0.1:7878", help="the server's address (default 127.0.0.1:7878)")
    p.add_argument("--socket", help="the server's unix socket (paddock serve --socket)")
    p.add_argument("--token-file", default=default_token_file())
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the outcome")
    p.add_argument("--check", action="store_true", help="only decide (POST /v1/check)")
    p.add_argument("--json", action="store_true", help="print the outcome JSON as is")
    p.add_argument("--read", metavar="PATH")
    p.add_argument("--write", metavar="PATH")
    p.add_argument("--content", metavar="TEXT")
    p.add_argument("--url")
    p.add_argument("--method", default="GET")
    p.add_argument("--data", metavar="BODY", help="http_request body")
    p.add_argument("--cwd")
    p.add_argument("--stdin", action="store_true", help="send this script's stdin to the command")
    p.add_argument("argv", nargs="*", help="-- PROGRAM [ARGS...]")
    args = p.parse_args()

    call = build_call(args)
    status, data = request(args, "/v1/check" if args.check else "/v1/calls", call)
    if status != 200:
        try:
            message = json.loads(data).get("error", data)
        except ValueError:
            message = data
        print(f"client.py: HTTP {status}: {message}", file=sys.stderr)
        return 1
    out = json.loads(data)
    if args.json:
        print(json.dumps(out, indent=2))
    elif args.check:
        print(f"{out['decision']}: {out['reason']} ({out['rule']})")
    elif out["decision"] != "allow":
        print(f"denied: {out['reason']} ({out['rule']})", file=sys.stderr)
    else:
        sys.stdout.write(out.get("content") or out.get("stdout") or "")
        sys.stderr.write(out.get("stderr") or "")
        if out.get("truncated"):
            print("client.py: output truncated at the policy's max_output", file=sys.stderr)
    if out["decision"] != "allow":
        return 77
    if args.check:
        return 0
    return out["exit_code"] if out.get("exit_code") is not None else 1


if __name__ == "__main__":
    sys.exit(main())
