package stepclaim

import (
	"context"
	"fmt"

	"github.com/tasker-sim/tasker-sim/pkg/groupcommit"
	"github.com/tasker-sim/tasker-sim/pkg/lifecycle"
	"github.com/tasker-sim/tasker-sim/pkg/messaging"
)

// SubmitBatchDefault is how many results one submit statement carries at most.
const SubmitBatchDefault = 64

// Submitter submits step results in batches, by group commit (package groupcommit): a
// result submitted while no statement is in flight goes out at once, alone; results
// submitted while one is in flight go out together in the next. A lone result never
// waits for a timer, and a burst shares statements and commits.
type Submitter struct {
	group *groupcommit.Group[lifecycle.Submission, int64]
}

// NewSubmitter returns a Submitter for workerID's results; max bounds a batch (default
// SubmitBatchDefault).
func NewSubmitter(db lifecycle.DB, workerID string, max int) *Submitter {
	if max <= 0 {
		max = SubmitBatchDefault
	}
	run := func(ctx context.Context, subs []lifecycle.Submission) ([]int64, error) {
		return lifecycle.SubmitResults(ctx, db, workerID, subs)
	}
	return &Submitter{group: groupcommit.New(run, max, messaging.BatchLinger)}
}

// Submit is Submit's batched form: it returns once the statement that carried the result
// has committed, with the completion message's id. The completion message's headers
// carry the trace context of ctx's span.
func (b *Submitter) Submit(ctx context.Context, s *Step, success bool, results []byte) (int64, error) {
	sub, err := submission(s, success, results, messaging.Headers(ctx))
	if err != nil {
		return 0, err
	}
	id, err := b.group.Do(ctx, sub)
	switch {
	case err != nil:
		return 0, fmt.Errorf("submit result of step %s: %w", s.StepUUID, err)
	case id == 0:
		return 0, fmt.Errorf("submit result of step %s attempt %d: %w", s.StepUUID, s.Attempt, ErrLeaseLost)
	}
	return id, nil
}
