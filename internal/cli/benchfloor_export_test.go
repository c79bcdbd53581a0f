package cli

import (
	"context"
	"os"
	"strconv"
)

// WriteFloorTasks writes times batches of batch floor tasks into url's database, one
// client, after preparing it as `bench floor` does: a measurement, counted instead of
// timed.
func WriteFloorTasks(ctx context.Context, url string, batch, times int) error {
	bin, err := findPgbench()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "tasker-sim-floor-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	path, err := writeFloorScript(ctx, dir, url, batch)
	if err != nil {
		return err
	}
	_, err = runPgbenchCmd(ctx, bin, "-n", "-c", "1", "-j", "1", "-t", strconv.Itoa(times), "-M", "prepared", "-f", path, url)
	return err
}
