package cli

import "github.com/spf13/cobra"

// stepCommands are the task subcommands for one step: show it, act on it, read its audit.
func stepCommands() []*cobra.Command { return nil }
