"""Fuzz the C decoder and encoder with atheris (run by `make fuzz`, under ASan + UBSan).

Every input must decode (possibly to nothing) and every decoded record must encode and parse
back; a crash, a sanitizer report or an exception other than our typed errors is a bug.
Seeds are the response packets of the shared captures, so mutations start from real dumps.
"""

import sys
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from xtcp_uring import native, records, schema

SEEDS = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "xtcp2"
RECORD_CLS, _ = schema.message_classes()


def one_input(data: bytes) -> None:
    dump = records.decode_buffers([data], strict=False)
    if dump.count:
        payload = dump.encode(native.FRAME_DELIMITED)
        if not payload:
            raise AssertionError("records decoded but nothing encoded")
        RECORD_CLS.FromString(native.encode(dump.records, 0, 1, b"", native.FRAME_SINGLE))


def write_seed_corpus(corpus: Path) -> None:
    from xtcp_uring.wire.pcap import PcapError, response_payloads

    corpus.mkdir(parents=True, exist_ok=True)
    for pcap in sorted(SEEDS.glob("*/*.pcap")):
        try:
            for i, payload in enumerate(response_payloads(pcap)):
                if i < 8:
                    (corpus / f"{pcap.stem}-{i}").write_bytes(bytes(payload))
        except PcapError:
            continue


if __name__ == "__main__":
    corpus = Path("build/fuzz-corpus")
    write_seed_corpus(corpus)
    print(f"decoder module: {native.__file__}", file=sys.stderr)
    atheris.Setup(sys.argv + [str(corpus)], one_input)
    atheris.Fuzz()
