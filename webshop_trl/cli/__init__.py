"""The `webshop-trl` command line: one module per sub-command, each with a `register(subparsers)`."""
