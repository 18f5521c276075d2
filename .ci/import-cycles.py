#!/usr/bin/env python3
"""Import circles between the files of each crate (issue 12: files import one way).

For every crate under ROOT (default `crates`), builds the graph of its source files from the
`crate::` and `super::` paths each one names (in `use` lines and in code; re-exports are
followed to the file that defines the item; the crate root, test modules and `tests.rs`
files are left out), and prints each circle with its edges. Exits 1 when there is one.

    python3 .ci/import-cycles.py [ROOT]
"""
import os, re, sys
root = sys.argv[1] if len(sys.argv) > 1 else 'crates'
found = False
ID = r'[A-Za-z_][A-Za-z0-9_]*'
def strip(src):
    # test-only code is not part of the module graph: cut inline test modules
    m = re.search(r'#\[cfg\(test\)\]\s*mod \w+\s*\{', src)
    if m: src = src[:m.start()]
    src = re.sub(r'//[^\n]*', '', src)
    return re.sub(r'/\*.*?\*/', '', src, flags=re.S)
def expand(prefix, body):
    # expand a use tree body "a, b::{c, d}, e as f"
    out, depth, cur = [], 0, ''
    for ch in body + ',':
        if ch == '{': depth += 1
        if ch == '}': depth -= 1
        if ch == ',' and depth == 0:
            cur = cur.strip()
            if cur:
                m = re.match(r'(.*?)::\{(.*)\}$', cur, re.S)
                if m: out += expand(prefix + [s for s in m.group(1).split('::') if s], m.group(2))
                else: out.append(prefix + [s.strip() for s in cur.split(' as ')[0].split('::') if s.strip()])
            cur = ''
        else: cur += ch
    return out
for crate in sorted(os.listdir(root)):
    src = os.path.join(root, crate, 'src')
    if not os.path.isdir(src): continue
    files = {}
    for d, _, fs in os.walk(src):
        for f in fs:
            if not f.endswith('.rs') or f == 'tests.rs': continue
            p = os.path.join(d, f); rel = os.path.relpath(p, src)[:-3].split(os.sep)
            if rel[-1] == 'mod': rel = rel[:-1]
            if rel == ['lib'] or rel == ['main']: rel = []
            if rel and rel[0] == 'bin': continue
            files[tuple(rel)] = p
    texts = {m: strip(open(p).read()) for m, p in files.items()}
    reexp = {}
    for m, t in texts.items():
        for um in re.finditer(r'pub(?:\([^)]*\))?\s+use\s+([^;]+);', t):
            for path in expand([], um.group(1)):
                if path and path[0] in ('crate',): tgt = path[1:]
                elif path and path[0] == 'self': tgt = list(m) + path[1:]
                elif path and path[0] == 'super': tgt = list(m[:-1]) + path[1:]
                else: tgt = list(m) + path
                if tuple(tgt[:-1]) in files or any(tuple(tgt[:i]) in files for i in range(1, len(tgt))):
                    reexp[(m, path[-1])] = tgt
    def resolve(path, depth=0):
        best = ()
        for i in range(len(path), 0, -1):
            if tuple(path[:i]) in files: best = tuple(path[:i]); break
        rest = path[len(best):]
        if rest and (best, rest[0]) in reexp and depth < 10:
            tgt = reexp[(best, rest[0])]
            if tgt != path: return resolve(tgt + rest[1:], depth + 1)
        return best
    edges = {m: set() for m in files}
    for m, t in texts.items():
        paths = []
        for um in re.finditer(r'\buse\s+([^;]+);', t):
            paths += expand([], um.group(1))
        for pm in re.finditer(r'(?<![A-Za-z0-9_:])((?:crate|super)(?:::(?:super|' + ID + r'))+)', t):
            paths.append(pm.group(1).split('::'))
        for path in paths:
            if not path: continue
            if path[0] == 'crate': abs_ = path[1:]
            elif path[0] == 'super':
                base = list(m); p = path
                isdir = files[m].endswith('mod.rs') or files[m].endswith('lib.rs')
                if not isdir: base = base[:-1]
                while p and p[0] == 'super':
                    base = base[:-1] if p is not path else base
                    p = p[1:]
                # first super from file x.rs -> parent module; further supers go up
                n = len(path) - len(p)
                base = list(m[:-1]) if not isdir else list(m[:-1])
                base = base[:len(base) - (n - 1)] if n > 1 else base
                abs_ = base + p
            else: continue
            tgt = resolve(abs_)
            if tgt != m and tgt != (): edges[m].add(tgt)
    # cycles via Tarjan SCC
    idx, low, st, on, sccs, c = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)
    def dfs(v):
        idx[v] = low[v] = c[0]; c[0] += 1; st.append(v); on.add(v)
        for w in edges[v]:
            if w not in idx: dfs(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], idx[w])
        if low[v] == idx[v]:
            comp = []
            while True:
                w = st.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1: sccs.append(comp)
    for v in edges:
        if v not in idx: dfs(v)
    for comp in sccs:
        names = ['/'.join(x) or 'lib' for x in comp]
        found = True
        print(f'{crate}: import circle among {sorted(names)}')
        for a in comp:
            for b in edges[a]:
                if b in comp: print(f'    {"/".join(a)} -> {"/".join(b)}')
sys.exit(1 if found else 0)
