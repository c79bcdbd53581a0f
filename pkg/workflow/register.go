package workflow

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Register upserts the templates' namespaces, named tasks and named steps in one
// transaction, so orchestration can create tasks of these shapes. Registering the same
// template again (another worker, a restart) updates it in place. A trigger on
// tasker.named_tasks notifies each template's named_task_uuid on
// messaging.TemplateRegisteredChannel as the transaction commits, so an orchestrator's
// template cache drops it.
func Register(ctx context.Context, pool *pgxpool.Pool, templates []*Template) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for _, t := range templates {
			if err := registerOne(ctx, tx, t); err != nil {
				return fmt.Errorf("register %s: %w", t.Key(), err)
			}
		}
		return nil
	})
}

func registerOne(ctx context.Context, tx pgx.Tx, t *Template) error {
	config, err := json.Marshal(t)
	if err != nil {
		return err
	}
	var nsUUID, taskUUID uuid.UUID
	if err := tx.QueryRow(ctx, `
		INSERT INTO tasker.task_namespaces (name) VALUES ($1)
		ON CONFLICT (name) DO UPDATE SET updated_at = now()
		RETURNING task_namespace_uuid`, t.NamespaceName).Scan(&nsUUID); err != nil {
		return err
	}
	if err := tx.QueryRow(ctx, `
		INSERT INTO tasker.named_tasks (task_namespace_uuid, name, version, description, configuration)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (task_namespace_uuid, name, version) DO UPDATE
		   SET description = EXCLUDED.description, configuration = EXCLUDED.configuration, updated_at = now()
		RETURNING named_task_uuid`, nsUUID, t.Name, t.Version, t.Description, config).Scan(&taskUUID); err != nil {
		return err
	}
	names := make([]string, len(t.Steps))
	retryable := make([]bool, len(t.Steps))
	attempts := make([]int32, len(t.Steps))
	for i, s := range t.Steps {
		names[i], retryable[i], attempts[i] = s.Name, s.Retry.IsRetryable(), int32(s.Retry.Attempts())
	}
	_, err = tx.Exec(ctx, `
		WITH input AS (
			SELECT * FROM unnest($2::text[], $3::bool[], $4::int[]) AS i(name, retryable, max_attempts)),
		steps AS (
			INSERT INTO tasker.named_steps (name) SELECT name FROM input
			ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
			RETURNING named_step_uuid, name)
		INSERT INTO tasker.named_tasks_named_steps (named_task_uuid, named_step_uuid, default_retryable, default_max_attempts)
		SELECT $1, steps.named_step_uuid, input.retryable, input.max_attempts
		  FROM steps JOIN input USING (name)
		ON CONFLICT (named_task_uuid, named_step_uuid) DO UPDATE
		   SET default_retryable = EXCLUDED.default_retryable, default_max_attempts = EXCLUDED.default_max_attempts`,
		taskUUID, names, retryable, attempts)
	return err
}
