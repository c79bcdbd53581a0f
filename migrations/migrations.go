// Package migrations installs tasker-sim's database schema: pgmq (the real extension when
// the server has it, else the project's compatible schema) and the tasker schema.
//
// Migrate is safe to call from every process at start: an advisory lock serialises
// concurrent callers, each migration runs in its own transaction together with its
// version row, and a migration already recorded is skipped.
package migrations

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed sql/*.sql
var files embed.FS

// PGMQMode selects how the pgmq API is provided.
type PGMQMode string

const (
	// PGMQAuto uses the extension when pg_available_extensions lists it, else the
	// compatible schema.
	PGMQAuto PGMQMode = "auto"
	// PGMQExtension requires the pgmq extension and fails when it is missing.
	PGMQExtension PGMQMode = "extension"
	// PGMQCompat installs the compatible schema even when the extension exists.
	PGMQCompat PGMQMode = "compat"
)

// advisoryLockKey identifies the migration lock ("tasker-sim migrate" as a stable key).
const advisoryLockKey int64 = 0x7461736b65720001

// Config tunes Migrate. The zero value is ready to use.
type Config struct {
	// PGMQ selects the pgmq provider. Default PGMQAuto.
	PGMQ PGMQMode
}

// Result reports what Migrate did.
type Result struct {
	// Applied lists the migrations this call applied, in order.
	Applied []string
	// PGMQProvider is "extension" or "compat": what provides the pgmq API.
	PGMQProvider string
}

// ErrPGMQUnavailable is returned when PGMQExtension is requested and the server lacks pgmq.
var ErrPGMQUnavailable = errors.New("the pgmq extension is not available on this server")

type migration struct {
	version string
	apply   func(ctx context.Context, tx pgx.Tx) error
}

// Migrate brings the database up to date. See the package comment for its guarantees.
func Migrate(ctx context.Context, pool *pgxpool.Pool, cfg *Config) (*Result, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	mode := cmp.Or(cfg.PGMQ, PGMQAuto)
	switch mode {
	case PGMQAuto, PGMQExtension, PGMQCompat:
	default:
		return nil, fmt.Errorf("migrations: pgmq mode %q: must be auto, extension or compat", mode)
	}

	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrations: acquire connection: %w", err)
	}
	defer conn.Release()

	// A session-level lock (not a transaction one) because several transactions follow.
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", advisoryLockKey); err != nil {
		return nil, fmt.Errorf("migrations: take advisory lock: %w", err)
	}
	defer func() {
		// Use a fresh context: the caller's may be cancelled, and the lock must go.
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", advisoryLockKey)
	}()

	if _, err := conn.Exec(ctx, `
		CREATE SCHEMA IF NOT EXISTS tasker;
		CREATE TABLE IF NOT EXISTS tasker.schema_migrations (
			version    text PRIMARY KEY,
			detail     text NOT NULL DEFAULT '',
			applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, fmt.Errorf("migrations: create version table: %w", err)
	}

	provider, err := choosePGMQProvider(ctx, conn.Conn(), mode)
	if err != nil {
		return nil, err
	}
	res := &Result{PGMQProvider: provider}

	steps := []migration{
		{version: "000_pgmq", apply: func(ctx context.Context, tx pgx.Tx) error {
			if provider == "extension" {
				_, err := tx.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pgmq")
				return err
			}
			return execFile(ctx, tx, "sql/pgmq_compat.sql")
		}},
		fileMigration("001_tasker_schema"),
		fileMigration("002_tasker_functions"),
		// Databases whose 000_pgmq installed an earlier compatible schema get pgmq 1.5.1's
		// API; on a fresh database the file changes nothing, and the extension needs nothing.
		{version: "003_pgmq_api_1_5_1", apply: func(ctx context.Context, tx pgx.Tx) error {
			if provider == "extension" {
				return nil
			}
			return execFile(ctx, tx, "sql/pgmq_compat.sql")
		}},
		fileMigration("004_trace_context"),
		fileMigration("005_batch_hot_path"),
		fileMigration("006_batch_checkpoints"),
		fileMigration("007_dlq_api"),
		fileMigration("008_global_notify"),
		fileMigration("009_lean_transitions"),
		fileMigration("010_hot_transitions"),
		fileMigration("011_hot_step_claims"),
		fileMigration("012_sql_uuid_v7"),
		fileMigration("013_template_notify"),
		fileMigration("014_flip_arrays"),
		fileMigration("015_redefined_functions"),
	}
	for _, m := range steps {
		applied, err := applyOnce(ctx, conn.Conn(), m, provider)
		if err != nil {
			return res, err
		}
		if applied {
			res.Applied = append(res.Applied, m.version)
		}
	}
	return res, nil
}

// choosePGMQProvider decides between the extension and the compatible schema. Once a
// database has one, it keeps it: switching would orphan the queues.
func choosePGMQProvider(ctx context.Context, conn *pgx.Conn, mode PGMQMode) (string, error) {
	var recorded string
	err := conn.QueryRow(ctx, "SELECT detail FROM tasker.schema_migrations WHERE version = '000_pgmq'").Scan(&recorded)
	switch {
	case err == nil:
		if mode == PGMQExtension && recorded != "extension" {
			return "", fmt.Errorf("migrations: pgmq mode %q: this database already uses the compatible schema: %w",
				mode, ErrPGMQUnavailable)
		}
		return recorded, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return "", fmt.Errorf("migrations: read recorded pgmq provider: %w", err)
	}
	if mode == PGMQCompat {
		return "compat", nil
	}
	var available bool
	if err := conn.QueryRow(ctx,
		"SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pgmq')").Scan(&available); err != nil {
		return "", fmt.Errorf("migrations: look for the pgmq extension: %w", err)
	}
	switch {
	case available:
		return "extension", nil
	case mode == PGMQExtension:
		return "", fmt.Errorf("migrations: pgmq mode %q: %w", mode, ErrPGMQUnavailable)
	default:
		return "compat", nil
	}
}

func fileMigration(version string) migration {
	return migration{version: version, apply: func(ctx context.Context, tx pgx.Tx) error {
		return execFile(ctx, tx, "sql/"+version+".sql")
	}}
}

func execFile(ctx context.Context, tx pgx.Tx, name string) error {
	body, err := files.ReadFile(name)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, string(body))
	return err
}

func applyOnce(ctx context.Context, conn *pgx.Conn, m migration, detail string) (bool, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("migrations: %s: begin: %w", m.version, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	var done bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM tasker.schema_migrations WHERE version = $1)",
		m.version).Scan(&done); err != nil {
		return false, fmt.Errorf("migrations: %s: check: %w", m.version, err)
	}
	if done {
		return false, nil
	}
	if err := m.apply(ctx, tx); err != nil {
		return false, fmt.Errorf("migrations: %s: %w", m.version, err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO tasker.schema_migrations (version, detail) VALUES ($1, $2)",
		m.version, detail); err != nil {
		return false, fmt.Errorf("migrations: %s: record: %w", m.version, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("migrations: %s: commit: %w", m.version, err)
	}
	return true, nil
}
