"""The video family in one place: frames in and out (`io`), integer block motion (`motion`,
`motion_coding`), the P-frame codec (`codec`, registered like the image codecs), the clip
container (`container`) and the streaming encoder/decoder API (`api`). It stands on the image
codecs (I-frames and the residual) and never the other way round."""
