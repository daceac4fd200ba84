"""The Pulumi program of this project (see infra/program.py)."""

from infra.provider_warmup import start_dynamic_provider_host

# First, before the program's own imports: the provider host then starts alongside them.
start_dynamic_provider_host()

from infra.program import main  # noqa: E402

main()
