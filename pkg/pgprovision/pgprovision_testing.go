package pgprovision

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
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

// RunTestMain is a whole TestMain for a package whose tests share one cluster: it starts
// the cluster (ForTestMain), hands it to use, runs the tests, stops the cluster, and fails
// the run when goroutines are left behind. name prefixes its messages.
//
//	func TestMain(m *testing.M) {
//		os.Exit(pgprovision.RunTestMain(m, "mypkg tests", func(c *pgprovision.Cluster) { cluster = c }))
//	}
func RunTestMain(m *testing.M, name string, use func(*Cluster)) int {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	c, stop, err := ForTestMain(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, name+": no PostgreSQL:", err)
		return 1
	}
	use(c)
	code := m.Run()
	stop()
	// goleak.Find retries for a while, which covers goroutines still on their way out.
	if err := goleak.Find(); err != nil && code == 0 {
		fmt.Fprintln(os.Stderr, name+": leaked goroutines:", err)
		code = 1
	}
	return code
}
