#!/usr/bin/env python3
"""Writes a deterministic file tree shaped like a Python dependency folder:
many small source files (compressible text) and some larger native libraries
(less compressible bytes). Usage: gen-tree.py DIR TOTAL_MB [SEED]"""
import os
import random
import sys

def main():
    root, total_mb = sys.argv[1], int(sys.argv[2])
    rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 7)
    words = [f"{w}{i}" for i in range(400) for w in ("def ", "self.", "return ", "import ", "value_", "#")]
    total = total_mb * 1024 * 1024
    written = 0
    pkg = 0
    while written < total:
        pkg += 1
        pdir = os.path.join(root, f"package_{pkg:04d}", "sub")
        os.makedirs(pdir, exist_ok=True)
        for f in range(rng.randint(5, 30)):
            if rng.random() < 0.03:
                # A native library: half random, half repeated structure.
                size = rng.randint(200_000, 2_000_000)
                data = rng.randbytes(size // 2) + bytes(range(256)) * (size // 512)
                name = f"_native_{f}.so"
            else:
                n = rng.randint(50, 2500)
                data = (" ".join(rng.choice(words) for _ in range(n)) + "\n").encode()
                name = f"module_{f}.py"
            with open(os.path.join(pdir if f % 2 else os.path.dirname(pdir), name), "wb") as fh:
                fh.write(data)
            written += len(data)
            if written >= total:
                break

if __name__ == "__main__":
    main()
