package cli

import "github.com/spf13/cobra"

// dlqCommand is taskerctl dlq: the dead-letter queue's entries and statistics.
func dlqCommand() *cobra.Command {
	return &cobra.Command{Use: "dlq", Short: "The dead-letter queue: list, get, update, stats"}
}
