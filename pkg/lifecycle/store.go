package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DB is the part of pgx that transitions need; a pgx.Tx, *pgx.Conn and *pgxpool.Pool all
// satisfy it. Pass a transaction to make a transition part of a larger unit of work.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ErrStaleState means the compare-and-set found the entity in another state than
// expected: someone else moved it first, and nothing was written.
var ErrStaleState = errors.New("state changed concurrently")

// TransitionTask moves a task from → to and writes its audit row, in one statement that
// only succeeds when the task's current state is still from.
func TransitionTask(ctx context.Context, db DB, task uuid.UUID, from, to TaskState, processor uuid.UUID, metadata map[string]any) error {
	if err := CheckTask(from, to); err != nil {
		return err
	}
	meta, err := encodeMetadata(metadata)
	if err != nil {
		return err
	}
	var moved bool
	if err := db.QueryRow(ctx, "SELECT tasker.transition_task_state($1, $2, $3, $4, $5)",
		task, string(from), string(to), processor, meta).Scan(&moved); err != nil {
		return fmt.Errorf("task %s: %s -> %s: %w", task, from, to, err)
	}
	if !moved {
		return fmt.Errorf("task %s: %s -> %s: %w", task, from, to, ErrStaleState)
	}
	return nil
}

// TransitionSteps moves every step in steps that is currently in from to to, with one
// audit row each, and returns the steps that moved. Steps in any other state are left
// alone: that is the compare-and-set, set-based.
func TransitionSteps(ctx context.Context, db DB, steps []uuid.UUID, from, to StepState, metadata map[string]any) ([]uuid.UUID, error) {
	if err := CheckStep(from, to); err != nil {
		return nil, err
	}
	if len(steps) == 0 {
		return nil, nil
	}
	meta, err := encodeMetadata(metadata)
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, "SELECT tasker.transition_step_states($1, $2, $3, $4)",
		steps, string(from), string(to), meta)
	if err != nil {
		return nil, fmt.Errorf("steps %s -> %s: %w", from, to, err)
	}
	moved, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("steps %s -> %s: %w", from, to, err)
	}
	return moved, nil
}

func encodeMetadata(metadata map[string]any) ([]byte, error) {
	if metadata == nil {
		return []byte("{}"), nil
	}
	b, err := json.Marshal(metadata)
	if err != nil {
		return nil, fmt.Errorf("encode transition metadata: %w", err)
	}
	return b, nil
}
