"""Entropy coding: integer CDF tables and the constriction range coder that uses them."""

from lic.entropy.coder import decode_symbols, encode_symbols
from lic.entropy.tables import CdfTables

__all__ = ["CdfTables", "decode_symbols", "encode_symbols"]
