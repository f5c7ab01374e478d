"""Coverage-guided fuzzing of `lic.decompress` with atheris (libFuzzer), both codecs.

    pip install -e .[fuzz]
    python tests/fuzz/make_corpus.py runs/fuzz/corpus
    OMP_NUM_THREADS=1 python tests/fuzz/fuzz_decompress.py runs/fuzz/corpus \\
        -artifact_prefix=runs/fuzz/ -max_total_time=3600 -timeout=60 -rss_limit_mb=4096

Any exception that is not a `LicError` is a finding: libFuzzer stops and writes the input
to `runs/fuzz/crash-*`. A mutated file almost never has a valid CRC, so the mutator fixes
the CRC of most of its outputs: those reach the header checks, the entropy decoders and
the networks instead of stopping at the checksum. Only the `lic` package is instrumented
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
    import lic.codecs.hyperprior  # imported lazily by lic: instrument them here
    import lic.codecs.vq
    from lic.errors import LicError

FIX_CRC_ONE_IN = 8  # one output in this many keeps a wrong CRC, to exercise that path too
lic.api.MAX_PIXELS = 256 * 256


def fix_crc(data: bytes) -> bytes:
    if len(data) < 8:
        return data
    return data[:-4] + struct.pack("<I", zlib.crc32(data[:-4]))


def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    mutated = atheris.Mutate(data, max_size)
    return mutated if seed % FIX_CRC_ONE_IN == 0 else fix_crc(mutated)


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
