"""One module per `llamadesk` subcommand; each has `register(subparsers)` and a handler."""
