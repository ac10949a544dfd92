// Command hustack runs the Hustack API server, its worker and its stdio MCP
// server, and manages workspaces and API keys from the command line.
//
//	hustack serve
//	hustack workspace create --name Acme --with-admin-key
//	hustack key create --workspace ID --name zapier --scopes read:accounts,write:notes
//	hustack key create --workspace ID --name xyz --scopes read:leads,write:leads --filter source="Vendor XYZ"
//	hustack key rotate KEY_ID --expire-old-in 7d
//	hustack usage --workspace ID --by key
//	hustack worker
//	hustack mcp
//
// Run `hustack help` for every command and setting.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hustack/hustack/store"
)

func main() {
	// The first SIGINT or SIGTERM cancels ctx, which starts a graceful
	// shutdown; a later one ends the process at once (see handleSignals).
	ctx, cancel := context.WithCancel(context.Background())
	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	go handleSignals(sigc, cancel, time.Now, func(sig os.Signal) {
		fmt.Fprintf(os.Stderr, "hustack: %s again: stopping without finishing the shutdown\n", sig)
		os.Exit(1)
	})
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	signal.Stop(sigc)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "hustack: "+errorText(err))
		os.Exit(exitCode(err))
	}
}

// repeatSignalGrace is how long after the first signal a repeated one is
// taken for the same request to stop. Supervisors and wrappers may deliver
// one stop request twice, to the process and to its process group (GNU
// timeout does; so does a terminal's Ctrl-C to `go run` and its child), and
// that must not cut short the shutdown it started.
const repeatSignalGrace = time.Second

// handleSignals cancels the program's context at the first signal from
// sigc, starting a graceful shutdown. A signal that comes repeatSignalGrace
// or more after the first calls abort, for an operator who will not wait for
// the shutdown to finish; earlier ones are ignored. It returns when sigc is
// closed or after calling abort.
func handleSignals(sigc <-chan os.Signal, cancel func(), now func() time.Time, abort func(os.Signal)) {
	if _, ok := <-sigc; !ok {
		return
	}
	first := now()
	cancel()
	for sig := range sigc {
		if now().Sub(first) >= repeatSignalGrace {
			abort(sig)
			return
		}
	}
}

// command is one entry of the command table. A new command is a new file
// with its run function and one entry in commands.
type command struct {
	name    string // words after "hustack", such as "key create"
	args    string // argument synopsis after the name, for usage
	summary string
	// run parses args with c.parse before doing anything else, so that -h
	// works without configuration.
	run func(ctx context.Context, c *cli, args []string) error
}

// commands is the command table, in the order help lists it.
var commands = []*command{
	{name: "serve", args: "[--addr ADDR] [--data-dir DIR]", summary: "Run the API server (and the worker, unless HUSTACK_WORKER=off) until SIGINT or SIGTERM.", run: runServe},
	{name: "worker", args: "[--data-dir DIR]", summary: "Run the worker alone (needs REDIS_URL) until SIGINT or SIGTERM.", run: runWorker},
	{name: "mcp", args: "[--url URL]", summary: "Serve the MCP tools over stdio for a desktop client (HUSTACK_URL, HUSTACK_API_KEY).", run: runMCP},
	{name: "workspace create", args: "[--json] --name NAME [--with-admin-key]",
		summary: "Create a workspace, and with --with-admin-key its first admin key (shown only once).", run: runWorkspaceCreate},
	{name: "workspace list", args: "[--json]", summary: "List workspaces.", run: runWorkspaceList},
	{name: "workspace policy", args: "[--json] --workspace ID [--max-key-lifetime 366d|0] [--require-expiry=true|false] [--disable-unused-after 90d|0]",
		summary: "Show a workspace's key policy, or change the rules given as flags.", run: runWorkspacePolicy},
	{name: "key create", args: "[--json] --workspace ID --name NAME --scopes SCOPES [--filter FIELD=VALUE] [--expires-in 720h | --expires-at RFC3339] [--rate-limit 600/m]",
		summary: "Create an API key; the key is shown only once.", run: runKeyCreate},
	{name: "key list", args: "[--json] --workspace ID", summary: "List a workspace's API keys (never the keys themselves).", run: runKeyList},
	{name: "key rotate", args: "[--json] KEY_ID [--expire-old-in 168h|7d|now]",
		summary: "Replace an API key with a new one (shown only once); the old one works until --expire-old-in has passed.", run: runKeyRotate},
	{name: "key revoke", args: "[--json] KEY_ID", summary: "Revoke an API key; running servers refuse it within 2 seconds.", run: runKeyRevoke},
	{name: "usage", args: "[--json] --workspace ID [--key KEY_ID] [--since 24h] [--by day|key|route|status]",
		summary: "Count a workspace's API requests by day, key, route or status.", run: runUsage},
	{name: "bench", args: "[--json] [--concurrency 16] [--duration 10s] [--url URL --key KEY] [--seed N]",
		summary: "Load-test the API in process (or a server at --url) and report requests/s and latencies.", run: runBench},
	{name: "version", args: "", summary: "Print the version.", run: runVersion},
}

// cli is what a command runs with: its table entry, the configuration and
// the standard streams.
type cli struct {
	cmd    *command
	cfg    Config
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// run is the whole program: main only adds signals, the real environment and
// the exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		printUsage(stderr)
		return usageErrorf("no command given")
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if cmd, _ := findCommand(args[1:]); cmd != nil {
			c := &cli{cmd: cmd, cfg: defaultConfig(), stdin: stdin, stdout: stdout, stderr: stderr}
			if err := cmd.run(ctx, c, []string{"-h"}); !errors.Is(err, flag.ErrHelp) {
				return err
			}
			return nil
		}
		if len(args) > 1 && len(groupCommands(args[1])) > 0 {
			printGroupUsage(stdout, args[1], groupCommands(args[1]))
			return nil
		}
		printUsage(stdout)
		return nil
	case "-v", "-version", "--version":
		args = []string{"version"}
	}
	cmd, rest := findCommand(args)
	if cmd == nil {
		group := groupCommands(args[0])
		if len(group) > 0 && (len(args) == 1 || strings.HasPrefix(args[1], "-")) {
			if len(args) > 1 && isHelpFlag(args[1]) {
				printGroupUsage(stdout, args[0], group)
				return nil
			}
			printGroupUsage(stderr, args[0], group)
			return usageErrorf("%s: missing subcommand", args[0])
		}
		if len(group) > 0 {
			return usageErrorf("unknown command %q; run 'hustack %s -h' for its subcommands", args[0]+" "+args[1], args[0])
		}
		return usageErrorf("unknown command %q; run 'hustack help' for the list", args[0])
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	c := &cli{cmd: cmd, cfg: cfg, stdin: stdin, stdout: stdout, stderr: stderr}
	err = cmd.run(ctx, c, rest)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func isHelpFlag(s string) bool {
	return s == "-h" || s == "-help" || s == "--help"
}

// findCommand returns the command named by the leading words of args and the
// arguments after its name; the longest name wins.
func findCommand(args []string) (*command, []string) {
	var best *command
	n := 0
	for _, cmd := range commands {
		words := strings.Fields(cmd.name)
		if len(words) > n && len(words) <= len(args) && slices.Equal(words, args[:len(words)]) {
			best, n = cmd, len(words)
		}
	}
	if best == nil {
		return nil, nil
	}
	return best, args[n:]
}

// groupCommands returns the commands whose name starts with the word group,
// such as every "key ..." command.
func groupCommands(group string) []*command {
	var out []*command
	for _, cmd := range commands {
		if first, _, _ := strings.Cut(cmd.name, " "); first == group {
			out = append(out, cmd)
		}
	}
	return out
}

// usageError is a mistake in the command line itself; it exits with status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

func exitCode(err error) int {
	if _, ok := errors.AsType[*usageError](err); ok {
		return 2
	}
	return 1
}

// errorText is what the operator sees for err: the message of an application
// error, the full text of anything else (the operator may see details that an
// API client may not).
func errorText(err error) string {
	if store.ErrorCode(err) != store.EINTERNAL {
		return store.ErrorMessage(err)
	}
	return err.Error()
}

// newFlagSet returns a flag set for cmd that reports errors instead of
// printing them; parseFlags prints the usage.
func newFlagSet(cmd *command) *flag.FlagSet {
	fs := flag.NewFlagSet("hustack "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// flags returns the flag set of the running command.
func (c *cli) flags() *flag.FlagSet { return newFlagSet(c.cmd) }

// jsonFlag adds the --json flag every listing and creating command accepts.
func jsonFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("json", false, "print JSON instead of readable text")
}

// parse parses args and returns the positional arguments, of which there
// must be between min and max. Flags and positional arguments may be mixed;
// "--" ends the flags. -h prints the command's usage and returns flag.ErrHelp.
func (c *cli) parse(fs *flag.FlagSet, args []string, min, max int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				printCommandUsage(c.stdout, c.cmd, fs)
				return nil, flag.ErrHelp
			}
			return nil, usageErrorf("%s: %v; run 'hustack %s -h' for usage", c.cmd.name, err, c.cmd.name)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	switch {
	case len(pos) > max && max == 0:
		return nil, usageErrorf("%s: unexpected argument %q", c.cmd.name, pos[0])
	case len(pos) > max:
		return nil, usageErrorf("%s: too many arguments; usage: hustack %s %s", c.cmd.name, c.cmd.name, c.cmd.args)
	case len(pos) < min:
		return nil, usageErrorf("%s: missing argument; usage: hustack %s %s", c.cmd.name, c.cmd.name, c.cmd.args)
	}
	return pos, nil
}

// required reports a missing flag.
func (c *cli) required(name, value string) error {
	if strings.TrimSpace(value) == "" {
		return usageErrorf("%s: --%s is required; usage: hustack %s %s", c.cmd.name, name, c.cmd.name, c.cmd.args)
	}
	return nil
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, `Hustack is a self-hostable CRM integration hub: a REST API over workspace-scoped
CRM data, reached with workspace-scoped API keys.

Usage:
  hustack <command> [--json] [flags]

Commands:
`)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, cmd := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", cmd.name, cmd.summary)
	}
	tw.Flush()
	fmt.Fprint(w, "\nEnvironment:\n")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, v := range envVars {
		def := v.def
		if def == "" {
			def = "unset"
		}
		fmt.Fprintf(tw, "  %s\t%s (default %s)\n", v.name, v.doc, def)
	}
	tw.Flush()
	fmt.Fprint(w, "\nRun 'hustack <command> -h' for a command's flags.\n")
}

func printGroupUsage(w io.Writer, group string, cmds []*command) {
	fmt.Fprintf(w, "Usage: hustack %s <subcommand> [--json] [flags]\n\nSubcommands:\n", group)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, cmd := range cmds {
		fmt.Fprintf(tw, "  %s\t%s\n", cmd.name, cmd.summary)
	}
	tw.Flush()
}

// printCommandUsage prints a command's synopsis and, when fs is given, its
// flags in --name form.
func printCommandUsage(w io.Writer, cmd *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: hustack %s %s\n\n%s\n", cmd.name, cmd.args, cmd.summary)
	if fs == nil {
		return
	}
	first := true
	fs.VisitAll(func(f *flag.Flag) {
		if first {
			fmt.Fprint(w, "\nFlags:\n")
			first = false
		}
		name, usage := flag.UnquoteUsage(f)
		if name != "" {
			name = " " + name
		}
		fmt.Fprintf(w, "  --%s%s\n    \t%s", f.Name, name, usage)
		if f.DefValue != "" && f.DefValue != "false" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// runVersion prints the version of the binary.
func runVersion(ctx context.Context, c *cli, args []string) error {
	if _, err := c.parse(c.flags(), args, 0, 0); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, "hustack", version())
	return nil
}

// buildVersion may be set at link time:
// go build -ldflags "-X main.buildVersion=v1.2.3" ./cmd/hustack
var buildVersion string

func version() string {
	if buildVersion != "" {
		return buildVersion
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
