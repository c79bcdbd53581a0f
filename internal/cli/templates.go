package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/client"
)

// templatesCommand is taskerctl templates: the registered task templates.
func templatesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "templates",
		Short: "The registered task templates: list, get",
		Long: `List the task templates the workers registered with the orchestrator, and show one
with its steps. A task is created from a template by namespace, name and version.

Example:
  taskerctl templates list --namespace rust_e2e_linear`,
	}
	cmd.AddCommand(templatesListCommand(), templatesGetCommand())
	return cmd
}

func templatesListCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list [--namespace NS]",
		Short: "List the namespaces and the registered templates",
		Long: `List every namespace with its template count, then the registered templates
(GET /v1/templates): name, version, step count and description. --namespace keeps the
templates of that namespace only. -o json prints the API's body.

Example:
  taskerctl templates list --namespace rust_e2e_linear`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, _ := cmd.Flags().GetString("namespace")
			return showRunE(func(cmd *cobra.Command, c *client.Client, _ []string) (*api.TemplateList, error) {
				return c.Templates(cmd.Context(), ns)
			}, func(w io.Writer, list *api.TemplateList) { printTemplateList(w, list, ns) })(cmd, args)
		},
	}
	cmd.Flags().String("namespace", "", "only the templates of this namespace, e.g. rust_e2e_linear")
	addOutputFlag(cmd)
	return cmd
}

// printTemplateList prints the namespaces, then the templates, as tables.
func printTemplateList(w io.Writer, list *api.TemplateList, ns string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tTEMPLATES\tDESCRIPTION")
	for _, n := range list.Namespaces {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", n.Name, n.TemplateCount, oneLine(n.Description))
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	if len(list.Templates) == 0 {
		if ns != "" {
			fmt.Fprintf(w, "no templates in namespace %s\n", ns)
		} else {
			fmt.Fprintln(w, "no templates registered")
		}
		return
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tVERSION\tSTEPS\tDESCRIPTION")
	for _, t := range list.Templates {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", t.Namespace, t.Name, t.Version, t.StepCount, oneLine(t.Description))
	}
	_ = tw.Flush()
	if ns != "" {
		fmt.Fprintf(w, "%d templates in namespace %s (%d in all)\n", len(list.Templates), ns, list.TotalCount)
		return
	}
	fmt.Fprintf(w, "%d templates\n", list.TotalCount)
}

// oneLine is *s on one line, or "-" when s is nil or blank.
func oneLine(s *string) string {
	if s == nil || strings.TrimSpace(*s) == "" {
		return "-"
	}
	return strings.Join(strings.Fields(*s), " ")
}

func templatesGetCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get NAMESPACE NAME VERSION",
		Short: "Show one template and its steps",
		Long: `Show one registered template (GET /v1/templates/{namespace}/{name}/{version}) and its
steps: whether each is retryable and how many attempts it has by default. NAMESPACE
and NAME are lower-case identifiers; VERSION is MAJOR.MINOR.PATCH. -o json prints the
API's body, with the stored template document as configuration.

Example:
  taskerctl templates get rust_e2e_linear mathematical_sequence 1.0.0`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 3 {
				return fmt.Errorf("%s takes 3 arguments, NAMESPACE NAME VERSION; got %d", cmd.CommandPath(), len(args))
			}
			if msg := api.CheckTemplatePath(args[0], args[1], args[2]); msg != "" {
				field, rule, _ := strings.Cut(msg, ": ")
				i := map[string]int{"namespace": 0, "name": 1, "version": 2}[field]
				return fmt.Errorf("%s %q: %s", strings.ToUpper(field), args[i], rule)
			}
			return nil
		},
		RunE: showRunE(func(cmd *cobra.Command, c *client.Client, args []string) (*api.TemplateDetail, error) {
			return c.Template(cmd.Context(), args[0], args[1], args[2])
		}, printTemplate),
	}
	addOutputFlag(cmd)
	return cmd
}

// printTemplate prints a template as a block, then its steps as a table.
func printTemplate(w io.Writer, t *api.TemplateDetail) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Template:\t%s/%s@%s\n", t.Namespace, t.Name, t.Version)
	fmt.Fprintf(tw, "Description:\t%s\n", oneLine(t.Description))
	fmt.Fprintf(tw, "Steps:\t%d\n", len(t.Steps))
	_ = tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tRETRYABLE\tMAX ATTEMPTS\tRESULT SCHEMA\tDESCRIPTION")
	for _, s := range t.Steps {
		schema := "no"
		if len(s.ResultSchema) > 0 && string(s.ResultSchema) != "null" {
			schema = "yes"
		}
		fmt.Fprintf(tw, "%s\t%t\t%d\t%s\t%s\n", s.Name, s.DefaultRetryable, s.DefaultMaxAttempts, schema, oneLine(s.Description))
	}
	_ = tw.Flush()
}
