"""The program's faces: flags and XTCP_* variables (options), the CLI, the daemon loop, metrics,
logs and the delivery verdict. Nothing in the library imports this package."""
