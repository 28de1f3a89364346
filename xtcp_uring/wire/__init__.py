"""The bytes on the wire, sans-I/O: netlink framing, dump requests, the filter language, pcap.

Nothing here opens a file descriptor or loads the C extension, so all of it runs on captured
bytes, in tests and without privilege. Never import ``native`` (or anything above it) here.
"""
