"""full/: thin drivers for P-I2SB at 512×512 (FFHQ → CelebA-Test) over the same library as the toys."""
