"""lic: learned image codecs that write real, portable bitstreams.

The pieces, in the order data flows through them (each imports only those above it):
- `lic.imageio`      what images are accepted and how they map to 8-bit RGB (+ alpha);
- `lic.codecs`       image codecs = analysis/synthesis transforms + a latent codec (`codecs/latent/`);
- `lic.entropy`      integer CDF tables, the integer network, the constriction range coder;
- `lic.bitstream`    the .lic container (codec ids: `lic.codec_ids`);
- `lic.api`          compress / decompress;
- `lic.video`        the video family: frame I/O, block motion, the P-frame codec, the clip container, its API;
- `lic.models`       the shipped model zoo and its loader;
- tooling above the runtime: `lic.export` and `lic.quantization` make model files, `lic.train`
  trains them, `lic.eval` measures them, `lic.cli` is the `lic` command.
"""

import warnings

# CompressAI scripts a helper with torch.jit at import time, which newer torch deprecates;
# the warning says nothing about lic and would be printed on every command.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated", category=FutureWarning)

from lic.errors import LicError

__version__ = "0.1.0"
__all__ = ["LicError", "__version__", "compress", "compress_video", "decompress", "decompress_video",
           "read_header", "read_video_header"]

#: Where each API function lives. They are imported on first use (PEP 562), so that `import
#: lic` -- and with it every `lic` command, `lic --help` included -- does not load torch and
#: the networks until a command codes something.
_API = {"compress": "lic.api", "decompress": "lic.api", "read_header": "lic.api",
        "compress_video": "lic.video.api", "decompress_video": "lic.video.api",
        "read_video_header": "lic.video.api"}


def __getattr__(name: str):
    if name in _API:
        import importlib

        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lic' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
