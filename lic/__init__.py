"""lic: learned image codecs that write real, portable bitstreams.

The pieces, in the order data flows through them:
- `lic.imageio`      what images are accepted and how they map to 8-bit RGB (+ alpha);
- `lic.codecs`       the learned codecs (`hyperprior.py`: encoder, decoder, export);
- `lic.entropy`      integer CDF tables, the integer hyper-network, the constriction coder;
- `lic.bitstream`    the .lic container format (`lic.video.container`: its sequence form);
- `lic.video`        clips: frame I/O, block motion, the streaming video API;
- `lic.models`       the shipped model zoo; `lic.train` trains models; `lic.eval` measures them;
- `lic.cli`          the `lic` command.
"""

import warnings

# CompressAI scripts a helper with torch.jit at import time, which newer torch deprecates;
# the warning says nothing about lic and would be printed on every command.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated", category=FutureWarning)

from lic.api import compress, decompress, read_header
from lic.errors import LicError
from lic.video.api import compress_video, decompress_video, read_video_header

__version__ = "0.1.0"
__all__ = ["LicError", "__version__", "compress", "compress_video", "decompress", "decompress_video",
           "read_header", "read_video_header"]
