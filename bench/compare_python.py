"""The seed's Process example in Python, for the speedup next to procq's:
two cpu_intensive_task(n) calls one after the other, then in two
multiprocessing.Process workers at once. Prints: sync_s parallel_s speedup."""
import multiprocessing as mp
import sys
import time


def cpu_intensive_task(n):
    return sum(i * i for i in range(n))


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000_000
    start = time.perf_counter()
    for _ in range(2):
        cpu_intensive_task(n)
    sync = time.perf_counter() - start
    start = time.perf_counter()
    procs = [mp.Process(target=cpu_intensive_task, args=(n,)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    par = time.perf_counter() - start
    print(f"{sync:.3f}\t{par:.3f}\t{sync / par:.2f}")


if __name__ == "__main__":
    main()
