#!/bin/bash
${sbatch_directives}
# Written by torc for workflow ${workflow_id}, allocation ${allocation_id}. Kept so a person can read
# exactly what was submitted. The worker claims jobs from PostgreSQL until nothing it can run is left.
set -u
export TORC_DATABASE_URL=${database_url}
# ${worker_target} is the workflow id, or `--workflows 3,7,9` when the allocation serves several of its
# owner's small workflows (a template that writes ${workflow_id} there is never used for those).
${launcher}${python} -m torc_hpc.cli.app worker ${worker_target} --slurm ${worker_args}
