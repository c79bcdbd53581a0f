package resilience

import (
	"context"

	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
)

// Channel is a bounded channel that reports how full it is. Every internal queue of work
// is one, so mpsc_channel_usage_percent, mpsc_channel_capacity and
// mpsc_channel_full_events_total describe all of them alike. A full channel makes the
// sender wait (backpressure) instead of growing.
type Channel[T any] struct {
	name      string
	component string
	ch        chan T
	in        *telemetry.Instruments
}

// NewChannel makes a channel of the given capacity. in may be nil (nothing recorded).
func NewChannel[T any](name, component string, capacity int, in *telemetry.Instruments) *Channel[T] {
	if in == nil {
		in = telemetry.Noop()
	}
	return &Channel[T]{name: name, component: component, ch: make(chan T, max(capacity, 1)), in: in}
}

// Send puts v on the channel, waiting while it is full (and counting that it was), or
// gives up when ctx ends. It reports whether v was sent.
func (c *Channel[T]) Send(ctx context.Context, v T) bool {
	select {
	case c.ch <- v:
		return true
	default:
	}
	c.in.ChannelFull(ctx, c.name, c.component)
	select {
	case c.ch <- v:
		return true
	case <-ctx.Done():
		return false
	}
}

// Receive is the channel to read from.
func (c *Channel[T]) Receive() <-chan T { return c.ch }

// Name is the channel's name as the metrics label it.
func (c *Channel[T]) Name() string { return c.name }

// Observe reports the channel's fill level and capacity to a gauge callback.
func (c *Channel[T]) Observe(g *telemetry.GaugeObserver) {
	g.Channel(c.name, c.component, len(c.ch), cap(c.ch))
}

// Len is how many items wait in the channel.
func (c *Channel[T]) Len() int { return len(c.ch) }

// Cap is the channel's capacity.
func (c *Channel[T]) Cap() int { return cap(c.ch) }
