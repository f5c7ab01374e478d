"""Export: a trained float network -> the tensors of a model file (tooling, above the runtime).

`hyperprior.py` and `vq.py` export one family each; `mixed_precision.py` chooses the
transforms' bit widths for `lic quantize`. The runtime codecs only ever read what these write.
"""
