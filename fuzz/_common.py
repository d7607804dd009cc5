"""Shared fuzz driver: atheris (coverage-guided libFuzzer) when installed, else a bounded random
mutation loop over the seed corpus (same targets, same invariants, no coverage feedback).

Usage (see .ci/fuzz.sh): python fuzz/fuzz_<target>.py [libFuzzer flags] WORK_CORPUS SEED_CORPUS
"""
from __future__ import annotations

import os
import random
import sys
import time


def _fallback(test_one_input, argv):
    """Mutate the corpus files (bit flips, byte edits, splices, truncation) for -max_total_time s."""
    budget, seed, dirs = 60.0, 0, []
    for a in argv[1:]:
        if a.startswith("-max_total_time="):
            budget = float(a.split("=", 1)[1])
        elif a.startswith("-seed="):
            seed = int(a.split("=", 1)[1])
        elif not a.startswith("-"):
            dirs.append(a)
    rng = random.Random(seed)
    corpus = [open(os.path.join(d, f), "rb").read() for d in dirs if os.path.isdir(d)
              for f in sorted(os.listdir(d))] or [b""]
    for c in corpus:  # every seed as it is first
        test_one_input(c)
    end, runs = time.monotonic() + budget, len(corpus)
    while time.monotonic() < end:
        data = bytearray(rng.choice(corpus))
        for _ in range(rng.randint(1, 8)):
            op = rng.randrange(5)
            if op == 0 and data:
                i = rng.randrange(len(data))
                data[i] ^= 1 << rng.randrange(8)
            elif op == 1 and data:
                data[rng.randrange(len(data))] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)])
            elif op == 2:
                other = rng.choice(corpus)
                i = rng.randrange(len(other) + 1)
                data[rng.randrange(len(data) + 1):] = other[i:i + rng.randint(1, 64)]
            elif op == 3 and data:
                del data[rng.randrange(len(data)):]
            else:
                data.insert(rng.randrange(len(data) + 1), rng.randrange(256))
        test_one_input(bytes(data))
        runs += 1
    print(f"fallback fuzzer: {runs} inputs in {budget:.0f} s, no failure", flush=True)


def instrumented(*packages):
    """Context for the target's imports: atheris coverage instrumentation of `packages` if available."""
    try:
        import atheris
    except ImportError:
        import contextlib
        return contextlib.nullcontext()
    return atheris.instrument_imports(include=list(packages))


def main(test_one_input):
    try:
        import atheris
    except ImportError:
        print("atheris not installed: bounded random-mutation fallback (no coverage guidance)", flush=True)
        return _fallback(test_one_input, sys.argv)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
