"""`python -m publish` runs the testigo command line."""
from .cli import cli

cli(prog_name="testigo")
