#!/usr/bin/env python3
"""The data-parallel scaling model of BENCHMARKS.md (issue #20).

Per step, with N machines (one rank each), global batch B, P parameters:

    T(N)  = t_c * (B/N) / B  +  t_r(N)                  (no overlap of compute and communication)
    t_r(N) = 2 (N-1) alpha  +  2 (N-1)/N * 4P / beta    (reduce-scatter + all-gather, as dist/mpi_world.rs)
    E(N)  = t_c / (N * T(N))                              (scaling efficiency, fixed global batch B)
    E_w(N) = t_c / (t_c + t_r(N))                         (weak scaling: B per machine, N*B in all)

t_c is the measured one-machine step time at batch B (`convnet bench --data-parallel`), alpha the
per-message latency, beta the link bandwidth in bytes/s. Compute is assumed to shrink linearly
with the shard (optimistic for shards of a few images, where the kernels run less efficiently).

Usage: python3 docs/benchmarks/mpi_scaling.py NAME:P:B:STEP_MS ...
"""
import sys

LINKS = [("10 Gb/s Ethernet", 30e-6, 10e9 / 8), ("100 Gb/s (RDMA)", 3e-6, 100e9 / 8)]


def model(p, b, t_c, n, alpha, beta):
    t_r = 2 * (n - 1) * alpha + 2 * (n - 1) / n * 4 * p / beta
    t = t_c / n + t_r
    return t, t_r, t_c / (n * t)


def main(args):
    print("| net | params P | bytes summed 4P | B | t_c (1 machine) | link | N | t_r | step T(N) | E(N), batch B | E_w(N), batch N*B |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for a in args:
        name, p, b, ms = a.split(":")
        p, b, t_c = int(p), int(b), float(ms) / 1e3
        for link, alpha, beta in LINKS:
            for n in (8, 64):
                t, t_r, e = model(p, b, t_c, n, alpha, beta)
                weak = t_c / (t_c + t_r)
                print(f"| {name} | {p:,} | {4 * p / 1e6:.2f} MB | {b} | {t_c * 1e3:.1f} ms | {link} | {n} "
                      f"| {t_r * 1e3:.2f} ms | {t * 1e3:.2f} ms | {100 * e:.0f} % | {100 * weak:.0f} % |")


if __name__ == "__main__":
    main(sys.argv[1:] or ["m1:454922:128:30.4", "final:326410:64:27.19", "resnet20:272474:128:189.22"])
