"""One module per `twinviz` subcommand, each with ``add_arguments(parser)`` and ``main(args)``."""
