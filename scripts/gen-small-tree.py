#!/usr/bin/env python3
"""Writes a deterministic tree of many small files shaped like a big
node_modules folder: packages of 5-40 small text files (50-700 bytes,
about 450 on average) in nested lib/ and dist/ folders, a package.json each.
Usage: gen-small-tree.py DIR FILES [SEED]"""
import os
import random
import sys

def main():
    root, files = sys.argv[1], int(sys.argv[2])
    rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 5)
    words = [f"{w}{i}" for i in range(300) for w in ("const ", "function ", "return ", "require(", "value_", "//")]
    written = 0
    pkg = 0
    while written < files:
        pkg += 1
        base = os.path.join(root, "node_modules", f"pkg-{pkg:05d}")
        dirs = [base, os.path.join(base, "lib"), os.path.join(base, "lib", "internal"), os.path.join(base, "dist")]
        for d in dirs:
            os.makedirs(d, exist_ok=True)
        with open(os.path.join(base, "package.json"), "w") as fh:
            fh.write('{"name": "pkg-%05d", "version": "1.0.%d", "main": "lib/index.js"}\n' % (pkg, pkg % 17))
        written += 1
        for f in range(rng.randint(5, 40)):
            if written >= files:
                break
            n = rng.randint(6, 100)
            text = " ".join(rng.choice(words) for _ in range(n)) + "\n"
            with open(os.path.join(rng.choice(dirs), f"module_{f}.js"), "w") as fh:
                fh.write(text)
            written += 1

if __name__ == "__main__":
    main()
