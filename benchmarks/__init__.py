"""Benchmarks for xtcp_uring: a socket farm and a harness that times us against the raw kernel
dump, ``ss -tin`` and pyroute2 on the same sockets. Run ``python -m benchmarks --help``."""
