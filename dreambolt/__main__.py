"""`python -m dreambolt` runs the command-line interface."""

from .cli import main

main()
