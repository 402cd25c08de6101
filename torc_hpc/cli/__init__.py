"""The `torc` command line: typer commands that parse, call one function, and print."""
