package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

func TestRetryableDatabaseError(t *testing.T) {
	t.Parallel()
	pg := func(code string) error { return fmt.Errorf("create task: %w", &pgconn.PgError{Code: code}) }
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"serialization failure", pg("40001"), true},
		{"deadlock", pg("40P01"), true},
		{"too many connections", pg("53300"), true},
		{"connection failure", pg("08006"), true},
		{"admin shutdown", pg("57P01"), true},
		{"statement timeout", pg("57014"), true},
		{"lock not available", pg("55P03"), true},
		{"unique violation", pg("23505"), false},
		{"undefined table", pg("42P01"), false},
		{"plain error", errors.New("boom"), false},
		{"deadline", context.DeadlineExceeded, false},
	} {
		require.Equal(t, c.want, retryableDatabaseError(c.err), c.name)
	}
}
