"""`python -m dreambolt` runs the command-line interface."""

from dreambolt.cli import main

main()
