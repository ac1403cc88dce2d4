"""`python -m vedfin_cli`: the same as the `vedfin` command."""

from vedfin_cli.main import main

main()
