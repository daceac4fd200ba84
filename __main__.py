"""The Pulumi program of this project (see infra/program.py)."""

from infra.program import main

main()
