// Package cli is the steward command line: a client of the REST API
// (agents, configs, assignments) plus whatever commands the binary
// registers (such as "server"). cmd/steward calls Main.
//
// Exit codes: 0 success, 1 the request failed (the error is printed), 2 the
// command line was wrong.
package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

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
		fmt.Fprintln(stderr, "Error:", safe(describe(re.err)))
		return ExitError
	}
	fmt.Fprintln(stderr, "Error:", safe(err.Error()))
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
	caFile string
	// reveal asks for secrets in clear (--reveal; admins only).
	reveal bool
	// httpClient trusts caFile (nil: the default client and system roots).
	httpClient *http.Client
}

// loadCA sets httpClient to trust the PEM certificates in caFile, for a
// server whose REST listener has a certificate of a private CA.
func (a *app) loadCA() error {
	if a.caFile == "" {
		return nil
	}
	b, err := os.ReadFile(a.caFile)
	if err != nil {
		return fmt.Errorf("--ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return fmt.Errorf("--ca-file %s: no PEM certificate in it", a.caFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	a.httpClient = &http.Client{Timeout: 60 * time.Second, Transport: tr}
	return nil
}

// client returns an API client; a --server without a scheme means http.
// The token is --token, else STEWARD_TOKEN (read here rather than given as
// the flag's default, so that no help page ever prints it).
func (a *app) client() *stewardhttp.Client {
	server := a.server
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	token := a.token
	if token == "" {
		token = os.Getenv("STEWARD_TOKEN")
	}
	c := stewardhttp.NewClient(server, token)
	c.HTTPClient = a.httpClient
	c.RevealSecrets = a.reveal
	return c
}

// NewRootCommand builds the steward command tree: the API client commands,
// global flags --server (env STEWARD_SERVER, default
// http://localhost:8080), --token (env STEWARD_TOKEN) and -o/--output
// (table, json or yaml), plus every registered command.
func NewRootCommand() *cobra.Command {
	a := &app{}
	root := &cobra.Command{
		Use:   "steward",
		Short: "Steward: an OpAMP control plane for OpenTelemetry agents",
		Long: `Steward manages a fleet of OpenTelemetry agents over OpAMP.

These commands talk to a Steward server's REST API. Point them at it with
--server (or STEWARD_SERVER) and authenticate with --token (or STEWARD_TOKEN).`,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			switch a.output {
			case "table", "json", "yaml":
				return a.loadCA()
			}
			return fmt.Errorf("invalid --output %q: use table, json or yaml", a.output)
		},
	}
	server := os.Getenv("STEWARD_SERVER")
	if server == "" {
		server = "http://localhost:8080"
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.server, "server", server, "Steward server URL (env STEWARD_SERVER)")
	pf.StringVar(&a.token, "token", "", "API token (default: the STEWARD_TOKEN environment variable, never shown)")
	pf.StringVar(&a.caFile, "ca-file", os.Getenv("STEWARD_CA_FILE"), "PEM file of the CA that signed the server's HTTPS certificate (env STEWARD_CA_FILE)")
	pf.StringVarP(&a.output, "output", "o", "table", "output format: table, json or yaml")

	root.AddCommand(a.agentsCommand(), a.configsCommand(), a.assignmentsCommand(), a.rolloutsCommand(), a.packagesCommand(), a.summaryCommand())
	root.AddCommand(a.credentialCommands()...)
	root.AddCommand(a.eventsCommand())
	root.AddCommand(a.usersCommand())

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

// structured reports whether -o asks for a machine-readable format (json
// or yaml) rather than the table for people.
func (a *app) structured() bool { return a.output == "json" || a.output == "yaml" }

// print writes v in the -o format: indented JSON, or YAML with the same
// field names and order as the JSON (the API's own shape, not Go's).
func (a *app) print(w io.Writer, v any) error {
	if a.output == "yaml" {
		return printYAML(w, v)
	}
	return printJSON(w, v)
}

// printJSON writes v as indented JSON. encoding/json escapes C0 controls
// but not C1 controls or bidirectional overrides; those are written as
// \uXXXX too (the same JSON value), so JSON output is as inert on a
// terminal as tables.
func printJSON(w io.Writer, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := io.WriteString(w, jsonSafe(b.String()))
	return err
}

// printYAML writes v's JSON encoding as block-style YAML: JSON is YAML, so
// it is decoded into a node tree (which keeps the key order) and re-encoded
// with the JSON styling dropped; multi-line strings such as config bodies
// come out as literal blocks. Like printJSON, it is inert on a terminal: a
// string holding control or bidirectional-formatting runes is double-quoted,
// where YAML escapes controls itself and jsonSafe's \uXXXX escapes mean the
// same rune.
func printYAML(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var doc yaml.Node
	// The YAML reader refuses raw C1 controls, which encoding/json leaves.
	if err := yaml.Unmarshal([]byte(jsonSafe(string(b))), &doc); err != nil {
		return fmt.Errorf("converting JSON to YAML: %w", err)
	}
	plain(&doc)
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	_, err = io.WriteString(w, jsonSafe(out.String()))
	return err
}

// plain clears the flow and quoting styles a JSON document decodes with
// (the encoder still quotes a string that would read as another type), and
// double-quotes strings holding runes a terminal would act on.
func plain(n *yaml.Node) {
	n.Style = 0
	if n.Kind == yaml.ScalarNode && strings.ContainsFunc(n.Value, func(r rune) bool { return r != '\n' && r != '\t' && unsafeRune(r) }) {
		n.Style = yaml.DoubleQuotedStyle
	}
	for _, c := range n.Content {
		plain(c)
	}
}

// table writes rows aligned in columns; cells go through safe, so a tab,
// newline or escape sequence in a value cannot break the layout or reach
// the terminal.
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		for i, c := range r {
			r[i] = safe(c)
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
