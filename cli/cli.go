// Package cli is the steward command line: a client of the REST API
// (agents, configs, assignments) plus whatever commands the binary
// registers (such as "server"). cmd/steward calls Main.
//
// Exit codes: 0 success, 1 the request failed (the error is printed), 2 the
// command line was wrong.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward"
	stewardhttp "github.com/stewardhq/steward/http"
)

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

var (
	registryMu sync.Mutex
	registry   []func() *cobra.Command
)

// RegisterCommand adds a top-level command (e.g. "server") to the root
// built by NewRootCommand and run by Main. Call it from an init function
// or from main before Main. A cobra command can have only one parent, so
// the same *cobra.Command is attached to every root built afterwards (the
// last one wins); use RegisterCommandFunc to build a fresh one per root.
func RegisterCommand(cmd *cobra.Command) {
	RegisterCommandFunc(func() *cobra.Command { return cmd })
}

// RegisterCommandFunc adds a top-level command built by fn each time a root
// is built.
func RegisterCommandFunc(fn func() *cobra.Command) {
	registryMu.Lock()
	defer registryMu.Unlock()
	registry = append(registry, fn)
}

// Main runs the command line args (without the program name) with the
// process's standard streams and environment, cancelled by SIGINT/SIGTERM,
// and returns the exit code.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, args, os.Stdout, os.Stderr)
}

// Run is Main with explicit context and output streams.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := NewRootCommand()
	return Execute(ctx, root, args, stdout, stderr)
}

// Execute runs root with args, printing errors as "Error: ..." on stderr,
// and returns the exit code: ExitUsage for a bad command line, ExitError
// when a command failed.
func Execute(ctx context.Context, root *cobra.Command, args []string, stdout, stderr io.Writer) int {
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SilenceErrors = true
	root.SilenceUsage = true
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var re *runError
	if errors.As(err, &re) {
		fmt.Fprintln(stderr, "Error:", describe(re.err))
		return ExitError
	}
	fmt.Fprintln(stderr, "Error:", err)
	fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", root.Name())
	return ExitUsage
}

// runError marks an error from a command's work (not its command line).
type runError struct{ err error }

func (e *runError) Error() string { return e.err.Error() }
func (e *runError) Unwrap() error { return e.err }

// describe renders an error for people: the message of a *steward.Error,
// with a hint for authentication failures.
func describe(err error) string {
	var se *steward.Error
	if !errors.As(err, &se) {
		if errors.Is(err, context.Canceled) {
			return "interrupted"
		}
		return err.Error()
	}
	msg := se.Message
	switch se.Code {
	case steward.EUNAUTHORIZED:
		msg += " (pass an API token with --token or STEWARD_TOKEN)"
	case steward.EFORBIDDEN:
		msg += " (the token is not allowed to do this)"
	}
	return msg
}

// app holds the global flags and builds the API client.
type app struct {
	server string
	token  string
	output string
}

// client returns an API client; a --server without a scheme means http.
func (a *app) client() *stewardhttp.Client {
	server := a.server
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	return stewardhttp.NewClient(server, a.token)
}

// NewRootCommand builds the steward command tree: the API client commands,
// global flags --server (env STEWARD_SERVER, default
// http://localhost:8080), --token (env STEWARD_TOKEN) and -o/--output
// (table or json), plus every registered command.
func NewRootCommand() *cobra.Command {
	a := &app{}
	root := &cobra.Command{
		Use:   "steward",
		Short: "Steward: an OpAMP control plane for OpenTelemetry agents",
		Long: `Steward manages a fleet of OpenTelemetry agents over OpAMP.

These commands talk to a Steward server's REST API. Point them at it with
--server (or STEWARD_SERVER) and authenticate with --token (or STEWARD_TOKEN).`,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if a.output != "table" && a.output != "json" {
				return fmt.Errorf("invalid --output %q: use table or json", a.output)
			}
			return nil
		},
	}
	server := os.Getenv("STEWARD_SERVER")
	if server == "" {
		server = "http://localhost:8080"
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.server, "server", server, "Steward server URL (env STEWARD_SERVER)")
	pf.StringVar(&a.token, "token", os.Getenv("STEWARD_TOKEN"), "API token (env STEWARD_TOKEN)")
	pf.StringVarP(&a.output, "output", "o", "table", "output format: table or json")

	root.AddCommand(a.agentsCommand(), a.configsCommand(), a.assignmentsCommand(), a.rolloutsCommand(), a.packagesCommand(), a.summaryCommand())
	root.AddCommand(a.credentialCommands()...)

	registryMu.Lock()
	fns := append([]func() *cobra.Command(nil), registry...)
	registryMu.Unlock()
	for _, fn := range fns {
		root.AddCommand(fn())
	}
	return root
}

// run adapts a command body so that its errors are reported as failures
// (exit 1) rather than usage errors.
func run(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := fn(cmd, args); err != nil {
			return &runError{err}
		}
		return nil
	}
}

// usagef returns a usage error (exit 2).
func usagef(format string, args ...any) error { return fmt.Errorf(format, args...) }

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes rows aligned in columns.
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		for i, c := range r {
			r[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(c)
		}
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// orDash renders empty strings as "-".
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
