"""Python's multiprocessing.Pool.map over the same inputs as procq's pool
benchmark: square (no sleep) over 1..N with 2 processes, at chunksize=1 and
at Pool.map's default chunking. Prints one line per case: name items/s.
Usage: pool_python.py [N] [PROCESSES] [one|default|both]"""
import multiprocessing as mp
import sys
import time


def square(x):
    return x * x


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    procs = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    which = sys.argv[3] if len(sys.argv) > 3 else "both"
    cases = [("python chunksize=1", {"chunksize": 1}), ("python default chunking", {})]
    cases = [c for c, w in zip(cases, ("one", "default")) if which in (w, "both")]
    inputs = list(range(1, n + 1))
    want = [x * x for x in inputs]
    with mp.Pool(procs) as pool:
        pool.map(square, range(procs * 4))  # warm the workers, as procq's are
        for name, kw in cases:
            start = time.perf_counter()
            got = pool.map(square, inputs, **kw)
            elapsed = time.perf_counter() - start
            assert got == want
            print(f"{name}\t{n / elapsed:.0f}")


if __name__ == "__main__":
    main()
