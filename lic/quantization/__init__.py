"""Mixed-precision weight quantization of trained models: storage, sensitivity, bit allocation."""
