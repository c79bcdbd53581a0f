package cli

import "github.com/spf13/cobra"

// templatesCommand is taskerctl templates: the registered task templates.
func templatesCommand() *cobra.Command {
	return &cobra.Command{Use: "templates", Short: "The registered task templates: list, get"}
}
