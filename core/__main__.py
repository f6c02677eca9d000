"""``python -m hbench`` is the ``hbench`` command."""

from hbench.cli import main

main()
