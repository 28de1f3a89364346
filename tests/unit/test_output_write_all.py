"""Output to a pipe is whole even when signals cut writes short (output.write_all).

A blocking pipe write interrupted by a signal handler (or, in the daemon, by io_uring's task
work) returns a partial count; CPython's BufferedWriter then dropped the rest of that write
without an error, which cut JSON lines of `--once | reader` in the middle. Here a real pipe with
a slow reader and a 5 ms interval timer in the writer produce those partial writes."""

from __future__ import annotations

import subprocess
import sys
import textwrap

LINES = 40000
WRITER = textwrap.dedent(f"""
    import signal, sys
    from xtcp_uring import output
    signal.signal(signal.SIGALRM, lambda *a: None)
    signal.setitimer(signal.ITIMER_REAL, 0.005, 0.005)
    data = b"".join(b"%08d" % i + b"x" * 91 + b"\\n" for i in range({LINES}))
    for _ in range(3):
        output.write_all(sys.stdout.buffer, data)
    sys.stdout.buffer.flush()
    signal.setitimer(signal.ITIMER_REAL, 0)  # before exit resets the handler
""")
READER = textwrap.dedent("""
    import sys, time
    n = bad = 0
    for line in sys.stdin.buffer:
        if n % 500 == 0:
            time.sleep(0.001)  # slow: the pipe fills, the writer blocks, the timer interrupts it
        bad += len(line) != 100
        n += 1
    print(n, bad)
""")


def test_a_pipe_gets_every_byte_while_signals_interrupt_the_writes():
    writer = subprocess.Popen([sys.executable, "-c", WRITER], stdout=subprocess.PIPE)
    reader = subprocess.run([sys.executable, "-c", READER], stdin=writer.stdout, capture_output=True, text=True,
                            timeout=120)
    writer.stdout.close()
    assert writer.wait(60) == 0
    assert reader.stdout.split() == [str(3 * LINES), "0"]


def test_in_memory_streams_are_written_as_they_are():
    import io

    from xtcp_uring import output

    buf = io.BytesIO()
    output.write_all(buf, b"abc")
    output.write_all(buf, memoryview(b"def"))
    assert buf.getvalue() == b"abcdef"
