"""``python -m aiayn`` runs the same Typer app as the ``aiayn`` console script."""

from aiayn.cli import main

if __name__ == "__main__":
    main()
