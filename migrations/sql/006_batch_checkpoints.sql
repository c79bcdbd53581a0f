-- Batch processing: a batch worker saves its progress while it runs, so that the attempt
-- after a crash (its lease ran out) resumes where the last checkpoint left off rather
-- than from the start of its range. The checkpoint outlives the attempt that wrote it.
ALTER TABLE tasker.workflow_steps ADD COLUMN IF NOT EXISTS checkpoint jsonb;

COMMENT ON COLUMN tasker.workflow_steps.checkpoint IS
    'progress a batch worker saved during an attempt (cursor, items processed, partial results); read by the next attempt';
COMMENT ON COLUMN tasker.workflow_steps.inputs IS
    'a step''s own input: for a batch worker created from a batch_worker step, its cursor range, batch metadata and template step name';
