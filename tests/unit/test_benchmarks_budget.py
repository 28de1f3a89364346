"""The harness's budget lines (issue 5): which tool is held to which line."""

from benchmarks.harness import budget_rows


def tool(name, wall, encode=None):
    row = {"kind": "tool", "tool": name, "wall_ms_median": wall, "ratio_vs_raw": wall / 100.0}
    if encode is not None:
        row["encode_us_per_record"] = encode
    return row


def test_the_io_uring_paths_are_held_to_the_budget_and_the_fallback_is_reported():
    rows = [tool("raw", 100.0), tool("ss", 800.0), tool("xtcp-uring", 125.0, 0.2),
            tool("xtcp-uring-inline", 140.0, 0.2), tool("xtcp-sockets", 200.0, 0.4)]
    lines = {b["line"]: b for b in budget_rows("big", rows)}
    assert lines["xtcp-uring: poll+encode ÷ raw"]["ok"] and lines["xtcp-uring: poll+encode ÷ raw"]["binding"]
    assert not lines["xtcp-uring-inline: poll+encode ÷ raw"]["ok"]  # 1.4x
    assert lines["xtcp-uring-inline: poll+encode ÷ raw"]["binding"]
    assert lines["xtcp-uring: ss -tin ÷ poll+encode"]["value"] == 800.0 / 125.0
    sockets = [b for name, b in lines.items() if name.startswith("xtcp-sockets")]
    assert len(sockets) == 3 and not any(b["binding"] for b in sockets)
    assert not lines["xtcp-sockets: encode µs/record"]["ok"]  # measured and reported as missed


def test_many_holds_async_to_the_sequential_paths():
    rows = [tool("raw", 100.0), tool("xtcp-uring", 400.0), tool("xtcp-uring-async", 250.0)]
    (line,) = budget_rows("many", rows)
    assert line["line"] == "io_uring+async ÷ xtcp-uring" and line["value"] == 250.0 / 400.0 and line["ok"]
