-- Step claims that update in place (HOT). A claim sets a step's lease (in_process,
-- claim_expires_at) and its submit clears it; idx_workflow_steps_claim_expiry indexed the
-- lease under a predicate on in_process, so neither update could be heap-only and each
-- wrote new entries into every index of workflow_steps. Orphan recovery, its only reader,
-- now finds expired leases among the steps of unfinished tasks (idx_tasks_unfinished), a
-- set that follows the tasks in flight. The fill factor leaves room on each page for the
-- row's next version.
DROP INDEX IF EXISTS tasker.idx_workflow_steps_claim_expiry;
ALTER TABLE tasker.workflow_steps SET (fillfactor = 80);
