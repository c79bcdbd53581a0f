package pgprovision

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"
)

var (
	sharedMu      sync.Mutex
	sharedCluster *Cluster
)

// ForTestMain starts (once per process) a cluster for a package's tests; call
// from TestMain. It returns the cluster and a stop func. One cluster per test
// binary keeps the initdb cost to one per package; tests isolate themselves
// with CreateDatabase. Set TASKER_TEST_VERBOSE to see progress on stderr.
func ForTestMain(ctx context.Context) (*Cluster, func(), error) {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if sharedCluster == nil {
		var opts Options
		if os.Getenv("TASKER_TEST_VERBOSE") != "" {
			opts.Logf = func(format string, args ...any) {
				fmt.Fprintf(os.Stderr, format+"\n", args...)
			}
		}
		c, err := Start(ctx, opts)
		if err != nil {
			return nil, func() {}, err
		}
		sharedCluster = c
	}
	c := sharedCluster
	stop := func() {
		sharedMu.Lock()
		defer sharedMu.Unlock()
		stopCtx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := c.Stop(stopCtx); err != nil {
			fmt.Fprintf(os.Stderr, "pgprovision: %v\n", err)
		}
		if sharedCluster == c {
			sharedCluster = nil
		}
	}
	return c, stop, nil
}
