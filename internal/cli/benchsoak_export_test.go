package cli

import (
	"context"
	"io"
)

// FillHistory copies the newest complete mathematical_sequence task of dbURL's database
// until it holds target tasks, then vacuums and analyzes, as `bench soak` does.
func FillHistory(ctx context.Context, dbURL string, target int64) error {
	h, err := newHistoryFiller(ctx, dbURL)
	if err != nil {
		return err
	}
	defer h.close()
	nop := func(string, ...any) {}
	if _, err := h.fillTo(ctx, target, io.Discard, nop); err != nil {
		return err
	}
	_, err = h.settle(ctx, nop)
	return err
}
