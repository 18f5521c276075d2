#!/usr/bin/env python3
"""Runs the composite action in action.yml the way a GitHub runner does, without one.

    action_runner.py ACTION_YML WORKDIR INPUTS_JSON

What it mimics: inputs with their defaults; `${{ }}` expressions over inputs, github.*,
runner.* and steps.*.outputs.* (any other expression is an error, so a typo in the
action fails the test); `if:` with always(), success() and `==` / `!=` comparisons, `&&`;
each step's `env:`; $GITHUB_OUTPUT, $GITHUB_ENV and $GITHUB_PATH files; `shell: bash` as
`bash --noprofile --norc -eo pipefail FILE`. `uses: actions/upload-artifact@v4` is done by
copying its paths to WORKDIR/artifacts/NAME (an absent path fails it, as
`if-no-files-found: error` does). Other `uses:` are refused.

Prints one JSON object: {"steps": [{"name", "outcome", "code"}], "outputs": {...}}.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import yaml

EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def main():
    action_path, workdir, inputs_json = sys.argv[1:4]
    action = yaml.safe_load(open(action_path))
    given = json.loads(inputs_json)
    assert action["runs"]["using"] == "composite", "not a composite action"
    declared = action.get("inputs", {})
    unknown = set(given) - set(declared)
    assert not unknown, f"inputs not declared by the action: {unknown}"
    inputs = {k: str(given.get(k, v.get("default", ""))) for k, v in declared.items()}
    missing = [k for k, v in declared.items() if v.get("required") and not given.get(k)]
    assert not missing, f"required inputs missing: {missing}"

    temp = os.path.join(workdir, "runner-temp")
    workspace = os.path.join(workdir, "workspace")
    for d in (temp, workspace):
        os.makedirs(d, exist_ok=True)
    ctx = {
        "inputs": inputs,
        "github": {
            "action_path": os.path.dirname(os.path.abspath(action_path)),
            "action_repository": "example/paddock",
            "action_ref": "main",
            "server_url": "https://github.invalid",
            "workspace": workspace,
        },
        "runner": {"temp": temp},
        "steps": {},
    }
    env = dict(os.environ)
    env.update({"RUNNER_TEMP": temp, "GITHUB_WORKSPACE": workspace, "CI": "true", "GITHUB_ACTIONS": "true"})
    failed = False
    results = []
    for i, step in enumerate(action["runs"]["steps"]):
        name = step.get("name", f"step {i}")
        if not condition(step.get("if", "success()"), ctx, failed):
            results.append({"name": name, "outcome": "skipped", "code": None})
            continue
        if "uses" in step:
            code = uses(step, ctx, workdir)
        else:
            code = run(step, ctx, env, temp, i)
        results.append({"name": name, "outcome": "success" if code == 0 else "failure", "code": code})
        failed = failed or code != 0
    outputs = {k: expand(v["value"], ctx) for k, v in action.get("outputs", {}).items()}
    print(json.dumps({"steps": results, "outputs": outputs, "failed": failed}))


def lookup(path, ctx):
    cur = ctx
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            if path.startswith("steps.") and path.count(".") == 3:
                return ""  # an output a step did not set is empty
            raise SystemExit(f"unknown expression `{path}`")
        cur = cur[part]
    return cur


def value(term, ctx):
    term = term.strip()
    if term.startswith("'") and term.endswith("'"):
        return term[1:-1]
    return str(lookup(term, ctx))


def expand(text, ctx):
    return EXPR.sub(lambda m: value(m.group(1), ctx), str(text))


def condition(text, ctx, failed):
    text = EXPR.sub(lambda m: m.group(1), str(text)).strip()
    ok = True
    for term in text.split("&&"):
        term = term.strip()
        if term == "always()":
            continue
        if term == "success()":
            ok = ok and not failed
        elif "==" in term or "!=" in term:
            op = "==" if "==" in term else "!="
            a, b = term.split(op)
            ok = ok and ((value(a, ctx) == value(b, ctx)) == (op == "=="))
        else:
            raise SystemExit(f"unsupported if: `{text}`")
    if "always()" not in text and "success()" not in text:
        ok = ok and not failed
    return ok


def run(step, ctx, env, temp, i):
    assert step.get("shell") == "bash", f"step {step.get('name')}: shell must be bash"
    files = {k: os.path.join(temp, f"{k.lower()}-{i}") for k in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH")}
    for f in files.values():
        open(f, "w").close()
    script = os.path.join(temp, f"step-{i}.sh")
    with open(script, "w") as f:
        f.write(expand(step["run"], ctx))
    step_env = dict(env)
    step_env.update(files)
    step_env.update({k: expand(v, ctx) for k, v in step.get("env", {}).items()})
    code = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", script], env=step_env).returncode
    outs = {}
    for line in open(files["GITHUB_OUTPUT"]).read().splitlines():
        k, _, v = line.partition("=")
        outs[k] = v
    if "id" in step:
        ctx["steps"][step["id"]] = {"outputs": outs}
    for line in open(files["GITHUB_ENV"]).read().splitlines():
        k, _, v = line.partition("=")
        env[k] = v
    for line in open(files["GITHUB_PATH"]).read().splitlines():
        env["PATH"] = line + os.pathsep + env["PATH"]
    return code


def uses(step, ctx, workdir):
    if not step["uses"].startswith("actions/upload-artifact@"):
        raise SystemExit(f"cannot mimic `uses: {step['uses']}`")
    w = step.get("with", {})
    dest = os.path.join(workdir, "artifacts", expand(w["name"], ctx))
    os.makedirs(dest, exist_ok=True)
    for p in expand(w["path"], ctx).split("\n"):
        p = p.strip()
        if not p:
            continue
        if not os.path.isfile(p):
            print(f"upload-artifact: no file {p}", file=sys.stderr)
            return 1
        shutil.copy(p, dest)
    return 0


if __name__ == "__main__":
    main()
