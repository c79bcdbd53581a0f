package dbwait

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	pgxuuid "github.com/vgarvardt/pgx-google-uuid/v5"
)

// Connect opens a pool on url, lets configure adjust its settings (pool size, tracer), and
// waits (Wait, with opts) for the database to answer. Every connection of the pool
// encodes and decodes google/uuid values as binary uuids: without that, pgx sends each
// uuid through its text form, with a failed binary attempt (and its error value) first,
// which cost more CPU than anything else on the hot path.
func Connect(ctx context.Context, url string, configure func(*pgxpool.Config), opts Options) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database url: %w", err)
	}
	if configure != nil {
		configure(cfg)
	}
	after := cfg.AfterConnect
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		pgxuuid.Register(conn.TypeMap())
		if after != nil {
			return after(ctx, conn)
		}
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	// The pool connects lazily: this waits for a database that is still starting.
	if opts.URL == "" {
		opts.URL = url
	}
	if err := Wait(ctx, pool.Ping, opts); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}
