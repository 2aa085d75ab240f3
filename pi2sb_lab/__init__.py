"""pi2sb-lab: Schrödinger-bridge image restoration (I2SB, P-I2SB), from 2D toys to FFHQ 512."""

__version__ = "0.1.0"
