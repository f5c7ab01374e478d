"""Latent codecs: latents in, entropy-coded streams out, and back (CompressAI's latent_codecs
idea, in this project's exact-integer style).

A latent codec is composed of stages, each of which codes one tensor of integer symbols with
integer CDF tables (`lic.entropy`): the factorized stage (`factorized.py`, one fixed table per
channel) and the Gaussian-conditional stage (`gaussian.py`, one table per element, chosen by a
scale index and shifted by a mean that an exact integer network derives). `hyperprior.py`
composes them: y -> h_a -> z (factorized stage) -> integer h_s -> (index, means, digest) -> y
(Gaussian-conditional stage). A better entropy model (a channel or spatial context) is another
composition of stages, used by an image codec with the same transforms.
"""
