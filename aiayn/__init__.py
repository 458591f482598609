"""aiayn: a from-scratch reproduction of "Attention Is All You Need" as a DVC pipeline.

Nothing heavy is imported here, so ``aiayn --help`` and the stage commands start instantly;
torch and friends are imported inside the functions that need them.
"""

__version__ = "0.1.0"
