"""`python -m lic.cli`: the `lic` command, in the form torchrun launches (`torchrun -m lic.cli train ...`)."""

from lic.cli import main

main()
