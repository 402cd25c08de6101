"""torc-hpc: a Slurm-native workflow orchestrator coordinated through PostgreSQL."""

__version__ = "0.1.0"
