"""The pipeline's stage commands, one Typer command per ``dvc.yaml`` stage.

Run as modules (``python -m stages.<name>``, as dvc.yaml does) so that ``stages/`` is not put
on ``sys.path``: ``stages/tokenize.py`` would otherwise shadow the standard library's
``tokenize`` module that ``inspect`` (and so typer and torch) imports.
"""
