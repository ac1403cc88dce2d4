"""How much memory a process used at its peak."""

from __future__ import annotations


def own_peak_rss_mib() -> float:
    """This process's peak resident set size (MiB), from VmHWM in /proc/self/status.

    Not ``resource.getrusage(...).ru_maxrss``: on Linux that keeps the high-water mark of
    the process image before ``exec``, so a child started from a large benchmark process
    reports at least the parent's size (measured here: a child of a 600 MiB parent gave
    ru_maxrss 611 MiB, VmHWM 11 MiB)."""
    try:
        for line in open("/proc/self/status"):  # noqa: SIM115
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
