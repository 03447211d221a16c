"""Quantisation, entropy coding (constriction) and one tile's bitstream."""
