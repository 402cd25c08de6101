#!/bin/bash
${sbatch_directives}
# Written by torc for workflow ${workflow_id}, allocation ${allocation_id}. Kept so a person can read
# exactly what was submitted. The worker claims jobs from PostgreSQL until nothing it can run is left.
set -u
export TORC_DATABASE_URL=${database_url}
${launcher}${python} -m torc_hpc.cli.app worker ${workflow_id} --slurm ${worker_args}
