-- Wake-ups on a channel only the workflow's readers know.
--
-- Workers and `torc watch` LISTEN for "jobs became ready" on a channel per workflow. It was named
-- torc_ready_<workflow id>, and PostgreSQL lets any role LISTEN or NOTIFY on any channel: another user could
-- learn when someone else's jobs became ready (timing, no content) and wake that user's idle workers at will.
-- The channel is now named by a random token stored with the workflow, which row-level security shows only to
-- its owner (and to watchers and admins); no role can write it.
ALTER TABLE workflows ADD COLUMN notify_channel text NOT NULL
    DEFAULT ('torc_ready_' || replace(gen_random_uuid()::text, '-', ''));
COMMENT ON COLUMN workflows.notify_channel IS 'LISTEN/NOTIFY channel on which its workers hear that jobs became ready: torc_ready_ and 32 random hex digits, readable only by those who may read the workflow.';
