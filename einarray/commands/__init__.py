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
    "einarray.commands.generate_cmds", # generate
    "einarray.commands.prove_cmds",    # prove
]

# The module that registers each command: running one command imports only its module,
# so that a command's start-up does not pay for the others' imports.
COMMANDS = {
    "cascades": "einarray.commands.cascade_cmds", "show": "einarray.commands.cascade_cmds",
    "check": "einarray.commands.cascade_cmds", "eval": "einarray.commands.cascade_cmds",
    "verilog": "einarray.commands.hw_cmds", "synth": "einarray.commands.hw_cmds",
    "simulate": "einarray.commands.sim_cmds",
    "run": "einarray.commands.flow_cmds", "compare": "einarray.commands.flow_cmds",
    "sweep": "einarray.commands.flow_cmds",
    "search": "einarray.commands.search_cmds",
    "generate": "einarray.commands.generate_cmds",
    "prove": "einarray.commands.prove_cmds",
}
