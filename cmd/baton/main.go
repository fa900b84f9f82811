// Command baton is the operator's tool for baton: it inspects a
// coordination service (ping, groups, members, leader, holder, watch), runs
// a program only while a lock is held or while this instance leads an
// election (lock, elect), explains connection strings and prints the
// driver reference.
//
// The backend URL comes from --url or $BATON_URL. Output is for humans by
// default; --json prints one JSON object per line. Run `baton --help` for
// the verbs and the exit codes.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/baton-go/baton/backend"
	_ "github.com/baton-go/baton/backend/all"
)

// Exit codes (documented in the root command's help).
const (
	exitOK          = 0
	exitError       = 1   // the backend failed or was unreachable
	exitUsage       = 2   // bad arguments
	exitNotFound    = 3   // no leader / lock not held / group not found
	exitNotAcquired = 4   // lock/election not acquired (--try or --timeout)
	exitLost        = 5   // the grant was lost while CMD ran; CMD was signalled
	exitCannotRun   = 126 // CMD could not be started
	exitNoCommand   = 127 // CMD was not found
)

const exitCodesHelp = `Exit codes:
  0    success (lock, elect: CMD exited 0)
  1    the backend failed or is unreachable (the cause is printed)
  2    usage error, or a connection string that Open would refuse (url explain)
  3    not found: no leader, lock not held, group not found
  4    lock or leadership not acquired (--try, or --timeout passed)
  5    the lock or leadership was lost while CMD ran; CMD was sent SIGTERM,
       then SIGKILL after --grace
  126  CMD could not be started; 127: CMD not found
  N    lock, elect: CMD's own exit status; 128+S when CMD was killed by
       signal S (as a shell reports it)`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// exitError carries an exit code through cobra.
type codeError struct {
	code int
	err  error
}

func (e *codeError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func withCode(code int, err error) error { return &codeError{code: code, err: err} }

// globals holds the flags every command shares.
type globals struct {
	url    string
	json   bool
	member string
	// connectTimeout bounds connecting.
	connectTimeout time.Duration
	stdout         io.Writer
	stderr         io.Writer
}

func run(args []string, stdout, stderr io.Writer) int {
	g := &globals{stdout: stdout, stderr: stderr}
	root := newRoot(g)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var ce *codeError
	if errors.As(err, &ce) {
		if ce.err != nil {
			fmt.Fprintln(stderr, "baton:", ce.err)
		}
		return ce.code
	}
	// cobra's own errors: unknown command, bad flag, wrong arg count.
	fmt.Fprintln(stderr, "baton:", err)
	fmt.Fprintln(stderr, "Run 'baton --help' for usage.")
	return exitUsage
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "baton",
		Short: "Inspect a coordination service and run programs under a lock or an election",
		Long: `baton inspects a coordination service through any registered driver and
runs programs only while a lock is held (baton lock) or while this instance
leads an election (baton elect).

The backend URL comes from --url or $BATON_URL (see 'baton drivers' and
'baton url explain URL'). Output is for humans by default; --json prints one
JSON object per line (streams: one per event).

` + exitCodesHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.url, "url", "", "backend URL (default $BATON_URL)")
	pf.BoolVar(&g.json, "json", false, "print one JSON object per line")
	pf.StringVar(&g.member, "member", "", "member ID (default: host-pid-random)")
	pf.DurationVar(&g.connectTimeout, "connect-timeout", 10*time.Second, "how long to try to connect before exit 1")
	root.CompletionOptions.DisableDefaultCmd = true

	root.AddCommand(newURLCmd(g), newDocsCmd(g), newDriversCmd(g))
	root.AddCommand(newPingCmd(g), newGroupsCmd(g), newMembersCmd(g), newLeaderCmd(g),
		newHolderCmd(g), newWatchCmd(g), newLockCmd(g), newElectCmd(g))
	return root
}

func newURLCmd(g *globals) *cobra.Command {
	u := &cobra.Command{Use: "url", Short: "Connection string tools", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() }}
	u.AddCommand(&cobra.Command{
		Use:   "explain URL",
		Short: "Print the resolved configuration of URL (no connection is made)",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if code := explain(args[0], g.stdout, g.stderr); code != 0 {
				return withCode(code, nil)
			}
			return nil
		},
	})
	return u
}

// explain prints the resolved configuration of rawURL. It is a dry run of
// backend.Open's validation of the connection string: it contacts no
// server, and a URL Open refuses before connecting is refused with the
// same error and exit status 2.
func explain(rawURL string, stdout, stderr io.Writer) int {
	cfg, err := backend.ParseURL(rawURL)
	if err != nil {
		fmt.Fprintln(stderr, "baton:", err)
		return exitUsage
	}
	fmt.Fprint(stdout, backend.Explain(cfg))
	return 0
}

func newDocsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "docs",
		Short: "Print the driver reference (docs/drivers.md)",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			if err := backend.WriteDriverDocs(g.stdout); err != nil {
				return withCode(exitError, err)
			}
			return nil
		},
	}
}

func newDriversCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "drivers",
		Short: "List the registered drivers and their URL schemes",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			for _, d := range backend.Drivers() {
				if g.json {
					g.emit(map[string]any{"name": d.Name, "schemes": d.Schemes})
					continue
				}
				fmt.Fprintf(g.stdout, "%-24s %s\n", strings.Join(d.Schemes, ","), d.Name)
			}
			return nil
		},
	}
}
