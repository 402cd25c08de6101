"""Slurm: one client interface (submit, status of many, accounting of many, cancel), the CLI
implementation of it, output parsers, sbatch script rendering and allocation bookkeeping."""
