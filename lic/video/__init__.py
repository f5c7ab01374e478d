"""Video: frames in and out (`io`), block motion (`motion`, `motion_coding`), the sequence
container (`container`) and the streaming encoder/decoder API (`api`). The P-frame codec
itself is `lic.codecs.video`, registered like the image codecs."""
