"""The ``cookbook`` command, one module per subcommand group."""
