"""CLI subcommands. Each module defines ``register(subparsers)``.

A subcommand's handler takes the parsed ``argparse.Namespace`` and returns the exit
status. User errors are raised as :class:`einsum.errors.EinarrayError` and turned into
one line on stderr and exit status 2 by :func:`einarray.cli.main`.
"""

# Order here is the order shown by ``einarray --help``.
COMMAND_MODULES = [
    "einarray.commands.cascade_cmds",  # cascades, show, check, eval
    "einarray.commands.hw_cmds",       # verilog, synth
    "einarray.commands.sim_cmds",      # simulate
    "einarray.commands.flow_cmds",     # sweep (run, compare, search as they land)
    "einarray.commands.search_cmds",   # search
]
