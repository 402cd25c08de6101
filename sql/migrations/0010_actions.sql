-- Actions at run time (issue 14, part 2): the counters a job's transition moves, the watcher's right to
-- fire actions and move their counters when it finishes or resets jobs, and an admin's to move them when
-- it cancels jobs.

-- A job copies the ids of the on_jobs_ready / on_jobs_complete actions that wait for it, so the statements
-- that finish jobs reach those actions' counters without a lookup. NULL (almost every job) adds no byte
-- and no work: the finish statements skip the counter update when no finished job carries ids.
ALTER TABLE jobs ADD COLUMN action_ids bigint[];
COMMENT ON COLUMN jobs.action_ids IS 'The on_jobs_ready / on_jobs_complete actions (workflow_actions.id) waiting for this job, copied from action_jobs at creation; NULL when none does (no counter to move).';

CREATE POLICY workflow_actions_watcher ON workflow_actions FOR UPDATE
    USING ((SELECT torc_granted('watcher'))) WITH CHECK ((SELECT torc_granted('watcher')));
COMMENT ON POLICY workflow_actions_watcher ON workflow_actions IS 'The cluster watcher fires actions (fired_at, fired_by) and moves their counters when it finishes or resets jobs (reached_count); no other column is granted to it.';

CREATE POLICY workflow_actions_admin ON workflow_actions FOR UPDATE
    USING ((SELECT torc_granted('admin'))) WITH CHECK ((SELECT torc_granted('admin')));
COMMENT ON POLICY workflow_actions_admin ON workflow_actions IS 'An admin canceling jobs moves the counters of the actions waiting for them (reached_count is the only column granted).';
