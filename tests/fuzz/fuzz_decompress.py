"""Coverage-guided fuzzing of `lic.decompress` with atheris (libFuzzer), both codecs.

    pip install -e .[fuzz]
    python tests/fuzz/make_corpus.py runs/fuzz/corpus
    OMP_NUM_THREADS=1 python tests/fuzz/fuzz_decompress.py runs/fuzz/corpus \\
        -artifact_prefix=runs/fuzz/ -max_total_time=3600 -timeout=60 -rss_limit_mb=4096

Any exception that is not a `LicError` is a finding: libFuzzer stops and writes the input
to `runs/fuzz/crash-*`. A mutated file almost never has a valid CRC, so the mutator fixes
the CRC of most of its outputs, and for half of them mutates one stream and repacks the
file: those reach the entropy decoders and the networks instead of stopping at the checksum
or the stream lengths. Only the `lic` package is instrumented
(torch and numpy are not), so coverage counts lic's own branches.

`MAX_PIXELS` is lowered to keep every execution short: the pixel limit itself is tested in
the suite, and a larger limit only makes the same code run longer.
"""

from __future__ import annotations

import struct
import sys
import zlib

import atheris

with atheris.instrument_imports(include=["lic"]):
    import lic
    import lic.api
    from lic import bitstream
    import lic.codecs.hyperprior  # imported lazily by lic: instrument them here
    import lic.codecs.vq
    from lic.errors import LicError

lic.api.MAX_PIXELS = 256 * 256


def fix_crc(data: bytes) -> bytes:
    if len(data) < 8:
        return data
    return data[:-4] + struct.pack("<I", zlib.crc32(data[:-4]))


def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    """One of three mutations, by seed: libFuzzer's on the raw bytes (CRC left wrong, so the
    checks before the checksum are fuzzed too); the same with the CRC fixed (header fields);
    or, for a file that parses, libFuzzer's on one stream, repacked with the right lengths
    and CRC (the entropy decoders and networks)."""
    kind = seed % 4
    if kind == 0:
        return atheris.Mutate(data, max_size)
    try:
        header, streams = bitstream.unpack(data)
    except LicError:
        streams = []
    if kind == 1 or not streams:
        return fix_crc(atheris.Mutate(data, max_size))
    i = (seed >> 2) % len(streams)
    streams[i] = atheris.Mutate(streams[i], max(2 * len(streams[i]), 16))
    return bitstream.pack(header, streams)


def test_one_input(data: bytes) -> None:
    try:
        lic.decompress(data)
    except LicError:
        pass


def main() -> None:
    atheris.Setup(sys.argv, test_one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
