"""`python -m lic`: the `lic` command (also `python -m lic.cli`, the form torchrun launches)."""

from lic.cli import main

main()
