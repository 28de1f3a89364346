"""Is anything delivered? Per sink, from the cumulative counters the sinks keep.

The daemon observes the counters after every poll and at every scrape. A sink whose last
observed change was a failure (a failed attempt, a drop, a rejection) and not a delivery is
*failing* until it delivers again: ``/readyz`` says so. A sink that delivered nothing in the
whole run while it failed or lost records makes the run fail (``DeliveryError``, exit 75):
an unwritable file, an unresolvable host or a broker down throughout is never a success.
"""

from __future__ import annotations

from ..errors import DeliveryError


class DeliveryWatch:
    def __init__(self) -> None:
        self._last: dict[str, tuple[int, int]] = {}  # name -> (sent batches, failures) last seen
        self._failing_since: dict[str, int] = {}  # name -> failed attempts when it last delivered

    def observe(self, sink_stats: dict) -> None:
        for name, st in sink_stats.items():
            sent = st.sent_batches
            failures = st.errors + st.dropped_batches + st.rejected_batches
            last_sent, last_failures = self._last.get(name, (0, 0))
            if sent > last_sent:
                self._failing_since.pop(name, None)
            elif failures > last_failures and name not in self._failing_since:
                self._failing_since[name] = last_failures
            self._last[name] = (sent, failures)

    def not_ready(self) -> str | None:
        """Why the daemon is not ready (the sinks not delivering now), or None."""
        if not self._failing_since:
            return None
        return "; ".join(f"sink {name}: not delivering ({self._last[name][1] - since} failures since it last "
                         "delivered)" for name, since in sorted(self._failing_since.items()))

    @staticmethod
    def check_run(sink_stats: dict) -> None:
        """Raise DeliveryError if a sink delivered nothing this run while it had something to do.

        Raises:
            DeliveryError: names each such sink with what it lost.
        """
        empty = [f"{name} ({st.dropped_records} records dropped, {st.rejected_records} rejected, "
                 f"{st.errors} failed attempts)"
                 for name, st in sink_stats.items()
                 if st.sent_batches == 0 and (st.errors or st.dropped_batches or st.rejected_batches)]
        if empty:
            raise DeliveryError(f"nothing was delivered to {'; '.join(empty)}; see the warnings above")
