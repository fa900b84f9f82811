package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/membership"
)

// interrupts turns SIGINT/SIGTERM into a cancelled context (the first one)
// and a stream of every signal, to forward to CMD.
type interrupts struct {
	ctx    context.Context
	cancel context.CancelFunc
	fwd    chan os.Signal
	raw    chan os.Signal

	mu    sync.Mutex
	first os.Signal
}

func newInterrupts() *interrupts {
	in := &interrupts{fwd: make(chan os.Signal, 8), raw: make(chan os.Signal, 8)}
	in.ctx, in.cancel = context.WithCancel(context.Background())
	signal.Notify(in.raw, os.Interrupt, syscall.SIGTERM)
	go func() {
		for s := range in.raw {
			in.mu.Lock()
			if in.first == nil {
				in.first = s
			}
			in.mu.Unlock()
			in.cancel()
			select {
			case in.fwd <- s:
			default:
			}
		}
	}()
	return in
}

func (in *interrupts) stop() {
	signal.Stop(in.raw)
	close(in.raw)
	in.cancel()
}

// code is the exit status for an interruption before CMD ran: 128+signal.
func (in *interrupts) code() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	if s, ok := in.first.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return 128 + int(syscall.SIGINT)
}

// outcome is how one run of CMD ended.
type outcome struct {
	code        int   // CMD's exit status (128+S when killed by signal S)
	lost        error // non-nil when the grant was lost while CMD ran
	interrupted bool  // baton was asked to stop (SIGINT/SIGTERM)
	duration    time.Duration
}

// supervise runs argv while grant is held. It forwards SIGINT/SIGTERM to
// CMD's process group, and on loss of the grant sends SIGTERM; either way,
// SIGKILL follows after grace if CMD is still running.
func (g *globals) supervise(in *interrupts, grant *backend.Grant, argv, env []string, grace time.Duration) (outcome, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, g.stdout, g.stderr
	// Own process group, so that signals reach CMD's children too; killed
	// when baton itself dies (kill -9), so that CMD never outlives the
	// process that holds its grant.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return outcome{}, withCode(exitNoCommand, err)
		}
		return outcome{}, withCode(exitCannotRun, err)
	}
	pgid := cmd.Process.Pid
	signalGroup := func(s syscall.Signal) { _ = syscall.Kill(-pgid, s) }
	waitCh := make(chan error, 1)
	go func() { waitCh <- cmd.Wait() }()

	var out outcome
	var kill <-chan time.Time
	armKill := func() {
		if kill == nil {
			kill = time.After(grace)
		}
	}
	lostCh := grant.Context().Done()
	for {
		select {
		case <-waitCh:
			out.duration = time.Since(start)
			ps := cmd.ProcessState
			out.code = ps.ExitCode()
			if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				out.code = 128 + int(ws.Signal())
			}
			return out, nil
		case <-lostCh:
			lostCh = nil
			out.lost = context.Cause(grant.Context())
			fmt.Fprintf(g.stderr, "baton: %s lost (%v): sending SIGTERM to CMD, SIGKILL after %v\n", grant.Name(), out.lost, grace)
			signalGroup(syscall.SIGTERM)
			armKill()
		case s := <-in.fwd:
			out.interrupted = true
			if sig, ok := s.(syscall.Signal); ok {
				signalGroup(sig)
			}
			armKill()
		case <-kill:
			fmt.Fprintf(g.stderr, "baton: CMD still running %v after SIGTERM: sending SIGKILL\n", grace)
			signalGroup(syscall.SIGKILL)
		}
	}
}

type runFlags struct {
	timeout time.Duration
	try     bool
	grace   time.Duration
	ttl     time.Duration
}

func (f *runFlags) add(c *cobra.Command, waitDoc string) {
	fs := c.Flags()
	fs.DurationVar(&f.timeout, "timeout", 0, waitDoc+" (0: wait forever); exit 4 when it passes")
	fs.BoolVar(&f.try, "try", false, "try once and exit 4 at once if not acquired")
	fs.DurationVar(&f.grace, "grace", 10*time.Second, "time between SIGTERM (or a forwarded signal) and SIGKILL")
	fs.DurationVar(&f.ttl, "ttl", 0, "lease of the grant on TTL-based stores (0: the driver's default)")
}

// splitCommand checks that CMD follows "--".
func splitCommand(c *cobra.Command, args []string, nBefore int) ([]string, []string, error) {
	dash := c.ArgsLenAtDash()
	if dash != nBefore || len(args) <= nBefore {
		return nil, nil, withCode(exitUsage, fmt.Errorf("usage: %s", c.UseLine()))
	}
	return args[:nBefore], args[nBefore:], nil
}

func newLockCmd(g *globals) *cobra.Command {
	var f runFlags
	c := &cobra.Command{
		Use:   "lock NAME -- CMD [ARGS...]",
		Short: "Run CMD only while lock NAME is held",
		Long: `lock takes lock NAME (waiting, up to --timeout; or once with --try), then runs
CMD with BATON_LOCK=NAME, BATON_FENCING_TOKEN=<token> and BATON_MEMBER in its
environment, and releases the lock when CMD exits. It exits with CMD's status.

CMD runs in its own process group. SIGINT and SIGTERM sent to baton are
forwarded to it. When the lock is lost (the session expired or was
suspended, the lock was broken), CMD is sent SIGTERM, then SIGKILL after
--grace, and baton exits 5. If baton itself is killed, CMD is killed too.

` + exitCodesHelp,
		Args: cobra.MinimumNArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			pre, argv, err := splitCommand(c, args, 1)
			if err != nil {
				return err
			}
			name := pre[0]
			in := newInterrupts()
			defer in.stop()
			b, err := g.open(in.ctx)
			if err != nil {
				if in.ctx.Err() != nil {
					return withCode(in.code(), nil)
				}
				return err
			}
			defer closeQuiet(b)
			o := backend.LockOptions{TTL: f.ttl}
			var grant *backend.Grant
			if f.try {
				gr, ok, err := b.TryLock(in.ctx, name, o)
				if err != nil {
					return withCode(codeFor(err), err)
				}
				if !ok {
					h, held, _ := b.LockHolder(in.ctx, name)
					if held {
						return withCode(exitNotAcquired, fmt.Errorf("lock %q is held by %s (token %d)", name, h.Member, h.Token))
					}
					return withCode(exitNotAcquired, fmt.Errorf("lock %q is held", name))
				}
				grant = gr
			} else {
				ctx, cancel := in.ctx, context.CancelFunc(func() {})
				if f.timeout > 0 {
					ctx, cancel = context.WithTimeout(in.ctx, f.timeout)
				}
				gr, err := b.Lock(ctx, name, o)
				cancel()
				if err != nil {
					switch {
					case in.ctx.Err() != nil:
						return withCode(in.code(), nil)
					case errors.Is(err, context.DeadlineExceeded):
						return withCode(exitNotAcquired, fmt.Errorf("lock %q not acquired within %v", name, f.timeout))
					}
					return withCode(codeFor(err), err)
				}
				grant = gr
			}
			env := []string{"BATON_LOCK=" + name, "BATON_FENCING_TOKEN=" + strconv.FormatUint(grant.Token(), 10), "BATON_MEMBER=" + b.MemberID()}
			if in.ctx.Err() != nil {
				_ = grant.Release(context.Background())
				return withCode(in.code(), nil)
			}
			out, err := g.supervise(in, grant, argv, env, f.grace)
			relCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = grant.Release(relCtx)
			if err != nil {
				return err
			}
			if out.lost != nil {
				return withCode(exitLost, fmt.Errorf("lock %q lost while CMD ran: %w", name, out.lost))
			}
			if out.code != 0 {
				return withCode(out.code, nil)
			}
			return nil
		},
	}
	f.add(c, "how long to wait for the lock")
	return c
}

func newElectCmd(g *globals) *cobra.Command {
	var f runFlags
	var restart bool
	var caps string
	c := &cobra.Command{
		Use:   "elect GROUP -- CMD [ARGS...]",
		Short: "Run CMD only while this instance leads GROUP (an elected singleton)",
		Long: `elect joins GROUP (creating it if needed), campaigns for its leadership and
runs CMD while it leads, with BATON_GROUP=GROUP, BATON_FENCING_TOKEN=<the
term's token> and BATON_MEMBER in its environment. When CMD exits it resigns
(so a successor starts within a round trip) and exits with CMD's status, or,
with --restart, campaigns again.

CMD runs in its own process group. SIGINT and SIGTERM sent to baton are
forwarded to CMD; baton then resigns and leaves. When leadership is lost, CMD
is sent SIGTERM, then SIGKILL after --grace; baton exits 5 (with --restart
it campaigns again). If baton itself is killed, CMD is killed too.

` + exitCodesHelp,
		Args: cobra.MinimumNArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			pre, argv, err := splitCommand(c, args, 1)
			if err != nil {
				return err
			}
			group := pre[0]
			var capBytes []byte
			if caps != "" {
				var v any
				if err := json.Unmarshal([]byte(caps), &v); err != nil {
					return withCode(exitUsage, fmt.Errorf("--capabilities: %v", err))
				}
				if capBytes, err = membership.EncodeCapabilities(v); err != nil {
					return withCode(exitUsage, err)
				}
			}
			in := newInterrupts()
			defer in.stop()
			b, err := g.open(in.ctx)
			if err != nil {
				if in.ctx.Err() != nil {
					return withCode(in.code(), nil)
				}
				return err
			}
			defer closeQuiet(b)
			if err := b.JoinCreate(in.ctx, group, capBytes); err != nil {
				if in.ctx.Err() != nil {
					return withCode(in.code(), nil)
				}
				return withCode(codeFor(err), err)
			}
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = b.Leave(ctx, group)
			}()
			o := backend.LockOptions{TTL: f.ttl}
			for {
				grant, err := g.campaign(in, b, group, o, f)
				if err != nil {
					return err
				}
				env := []string{"BATON_GROUP=" + group, "BATON_FENCING_TOKEN=" + strconv.FormatUint(grant.Token(), 10), "BATON_MEMBER=" + b.MemberID()}
				out, err := g.supervise(in, grant, argv, env, f.grace)
				relCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_ = grant.Release(relCtx) // resign
				cancel()
				if err != nil {
					return err
				}
				switch {
				case out.interrupted || in.ctx.Err() != nil:
					if out.code != 0 {
						return withCode(out.code, nil)
					}
					return nil
				case !restart && out.lost != nil:
					return withCode(exitLost, fmt.Errorf("leadership of %q lost while CMD ran: %w", group, out.lost))
				case !restart:
					if out.code != 0 {
						return withCode(out.code, nil)
					}
					return nil
				}
				if err := b.Err(); err != nil {
					return withCode(exitLost, err)
				}
				if out.lost != nil {
					fmt.Fprintf(g.stderr, "baton: leadership of %q lost: campaigning again\n", group)
				} else {
					fmt.Fprintf(g.stderr, "baton: CMD exited with status %d: campaigning again\n", out.code)
				}
				if out.duration < time.Second { // a CMD that fails at once does not spin
					select {
					case <-time.After(time.Second - out.duration):
					case <-in.ctx.Done():
						return withCode(in.code(), nil)
					}
				}
			}
		},
	}
	f.add(c, "how long to wait for leadership")
	c.Flags().BoolVar(&restart, "restart", false, "campaign again and rerun CMD when it exits or leadership is lost")
	c.Flags().StringVar(&caps, "capabilities", "", "this member's capabilities, as JSON (stored as msgpack)")
	return c
}

// campaign waits for leadership as --try/--timeout say.
func (g *globals) campaign(in *interrupts, b *backend.Backend, group string, o backend.LockOptions, f runFlags) (*backend.Grant, error) {
	if f.try {
		gr, ok, err := b.TryCampaign(in.ctx, group, o)
		if err != nil {
			if in.ctx.Err() != nil {
				return nil, withCode(in.code(), nil)
			}
			return nil, withCode(codeFor(err), err)
		}
		if !ok {
			return nil, withCode(exitNotAcquired, fmt.Errorf("group %q has a leader", group))
		}
		return gr, nil
	}
	ctx, cancel := in.ctx, context.CancelFunc(func() {})
	if f.timeout > 0 {
		ctx, cancel = context.WithTimeout(in.ctx, f.timeout)
	}
	defer cancel()
	gr, err := b.Campaign(ctx, group, o)
	if err != nil {
		switch {
		case in.ctx.Err() != nil:
			return nil, withCode(in.code(), nil)
		case errors.Is(err, context.DeadlineExceeded):
			return nil, withCode(exitNotAcquired, fmt.Errorf("leadership of %q not acquired within %v", group, f.timeout))
		}
		return nil, withCode(codeFor(err), err)
	}
	return gr, nil
}
