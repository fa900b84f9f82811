package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

// emit prints v as one JSON line.
func (g *globals) emit(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintln(g.stderr, "baton:", err)
		return
	}
	fmt.Fprintf(g.stdout, "%s\n", b)
}

// rawURL returns --url, else $BATON_URL.
func (g *globals) rawURL() (string, error) {
	if g.url != "" {
		return g.url, nil
	}
	if u := os.Getenv("BATON_URL"); u != "" {
		return u, nil
	}
	return "", withCode(exitUsage, errors.New("no backend URL: pass --url or set BATON_URL"))
}

// open connects to the backend.
func (g *globals) open(ctx context.Context, opts ...backend.Option) (*backend.Backend, error) {
	u, err := g.rawURL()
	if err != nil {
		return nil, err
	}
	if g.member != "" {
		opts = append(opts, backend.WithMemberID(g.member))
	}
	octx, cancel := context.WithTimeout(ctx, g.connectTimeout)
	defer cancel()
	b, err := backend.Open(octx, u, opts...)
	if err != nil {
		return nil, withCode(codeFor(err), err)
	}
	return b, nil
}

// codeFor maps a backend error to an exit code.
func codeFor(err error) int {
	switch {
	case errors.Is(err, backend.ErrInvalidArgument):
		return exitUsage
	case errors.Is(err, backend.ErrGroupNotFound), errors.Is(err, backend.ErrNotFound):
		return exitNotFound
	}
	return exitError
}

// closeQuiet closes b with a bound.
func closeQuiet(b *backend.Backend) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = b.Close(ctx)
}

// inspect runs fn with an open backend, interrupted by SIGINT/SIGTERM.
func (g *globals) inspect(fn func(ctx context.Context, b *backend.Backend) error) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b, err := g.open(ctx)
	if err != nil {
		return err
	}
	defer closeQuiet(b)
	if err := fn(ctx, b); err != nil {
		var ce *codeError
		if errors.As(err, &ce) {
			return err
		}
		return withCode(codeFor(err), err)
	}
	return nil
}

// characteristics lists the named characteristics the backend has.
func characteristics(cs backend.Characteristics) []string {
	var out []string
	for _, c := range driver.AllCharacteristics() {
		if cs.Has(c) {
			out = append(out, c.String())
		}
	}
	return out
}

func newPingCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "ping",
		Short: "Connect and print the driver, hosts, round-trip time, session TTL and characteristics",
		Long: `ping connects, lists the groups once to measure a round trip, and prints the
driver, the resolved hosts, the round-trip time, how the session is kept alive
(liveness, TTL, renewal interval) and the backend's characteristics. It exits
1 with the cause when the backend is unreachable.`,
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			return g.inspect(func(ctx context.Context, b *backend.Backend) error {
				start := time.Now()
				if _, err := b.Groups(ctx); err != nil {
					return err
				}
				rtt := time.Since(start)
				cfg := b.Config()
				s := b.Session()
				cs := b.Characteristics()
				if g.json {
					g.emit(map[string]any{
						"driver": cfg.Driver.Name, "scheme": cfg.Scheme, "url": cfg.Redacted,
						"hosts": cfg.Hosts, "member": b.MemberID(),
						"rtt_seconds": rtt.Seconds(), "liveness": s.Liveness.String(),
						"ttl_seconds": s.TTL.Seconds(), "renew_interval_seconds": s.RenewInterval.Seconds(),
						"watch": cs.Watch.String(), "fencing": cs.Fencing.String(),
						"characteristics": characteristics(cs),
					})
					return nil
				}
				w := g.stdout
				fmt.Fprintf(w, "driver:          %s (%s)\n", cfg.Driver.Name, cfg.Scheme)
				fmt.Fprintf(w, "url:             %s\n", cfg.Redacted)
				if len(cfg.Hosts) > 0 {
					fmt.Fprintf(w, "hosts:           %s\n", strings.Join(cfg.Hosts, ", "))
				}
				fmt.Fprintf(w, "member:          %s\n", b.MemberID())
				fmt.Fprintf(w, "round trip:      %v\n", rtt.Round(time.Microsecond))
				ttl := "none (the session cannot expire while the process lives)"
				if s.TTL > 0 {
					ttl = fmt.Sprintf("%v, renewed every %v", s.TTL, s.RenewInterval)
				}
				fmt.Fprintf(w, "liveness:        %s, TTL %s\n", s.Liveness, ttl)
				fmt.Fprintf(w, "watch:           %s\n", cs.Watch)
				fmt.Fprintf(w, "fencing:         %s\n", cs.Fencing)
				fmt.Fprintf(w, "characteristics: %s\n", strings.Join(characteristics(cs), ", "))
				return nil
			})
		},
	}
}

func newGroupsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "groups",
		Short: "List the groups",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			return g.inspect(func(ctx context.Context, b *backend.Backend) error {
				gs, err := b.Groups(ctx)
				if err != nil {
					return err
				}
				for _, name := range gs {
					if g.json {
						g.emit(map[string]any{"group": name})
					} else {
						fmt.Fprintln(g.stdout, name)
					}
				}
				return nil
			})
		},
	}
}

// decodeCaps renders capabilities: msgpack decoded when they are msgpack,
// else text when printable, else hex.
func decodeCaps(raw []byte) any {
	if len(raw) == 0 {
		return nil
	}
	var v any
	r := bytes.NewReader(raw)
	dec := msgpack.NewDecoder(r)
	if err := dec.Decode(&v); err == nil && r.Len() == 0 {
		if _, err := json.Marshal(v); err == nil {
			return v
		}
	}
	if utf8.Valid(raw) {
		return string(raw)
	}
	return "hex:" + hex.EncodeToString(raw)
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func memberJSON(m backend.Member) map[string]any {
	out := map[string]any{"id": m.ID, "capabilities": decodeCaps(m.Capabilities)}
	if !m.JoinedAt.IsZero() {
		out["joined_at"] = m.JoinedAt.UTC()
	}
	if !m.UpdatedAt.IsZero() {
		out["updated_at"] = m.UpdatedAt.UTC()
	}
	return out
}

func capsText(m backend.Member) string {
	c := decodeCaps(m.Capabilities)
	if c == nil {
		return "-"
	}
	if s, ok := c.(string); ok {
		return s
	}
	b, _ := json.Marshal(c)
	return string(b)
}

func newMembersCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "members GROUP",
		Short: "List a group's members with their capabilities and join/update times",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return g.inspect(func(ctx context.Context, b *backend.Backend) error {
				ms, err := b.Members(ctx, args[0])
				if err != nil {
					return err
				}
				if !g.json {
					fmt.Fprintf(g.stdout, "%-28s %-20s %-20s %s\n", "MEMBER", "JOINED", "UPDATED", "CAPABILITIES")
				}
				for _, m := range ms {
					if g.json {
						g.emit(memberJSON(m))
						continue
					}
					fmt.Fprintf(g.stdout, "%-28s %-20s %-20s %s\n", m.ID, fmtTime(m.JoinedAt), fmtTime(m.UpdatedAt), capsText(m))
				}
				return nil
			})
		},
	}
}

// printHolder prints a leader or lock holder; exit 3 when none.
func (g *globals) printHolder(kind, name string, h backend.Holder, ok bool) error {
	if g.json {
		if ok {
			g.emit(map[string]any{kind: name, "held": true, "member": h.Member, "token": h.Token})
		} else {
			g.emit(map[string]any{kind: name, "held": false})
		}
	} else if ok {
		fmt.Fprintf(g.stdout, "%s\ttoken %d\n", h.Member, h.Token)
	}
	if !ok {
		if kind == "group" {
			return withCode(exitNotFound, fmt.Errorf("group %q has no leader", name))
		}
		return withCode(exitNotFound, fmt.Errorf("lock %q is not held", name))
	}
	return nil
}

func newLeaderCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "leader GROUP",
		Short: "Print a group's leader and its term's fencing token (exit 3 when none)",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return g.inspect(func(ctx context.Context, b *backend.Backend) error {
				h, ok, err := b.Leader(ctx, args[0])
				if err != nil {
					return err
				}
				return g.printHolder("group", args[0], h, ok)
			})
		},
	}
}

func newHolderCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "holder LOCK",
		Short: "Print a lock's holder and fencing token (exit 3 when not held)",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return g.inspect(func(ctx context.Context, b *backend.Backend) error {
				h, ok, err := b.LockHolder(ctx, args[0])
				if err != nil {
					return err
				}
				return g.printHolder("lock", args[0], h, ok)
			})
		},
	}
}

func newWatchCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "watch GROUP",
		Short: "Stream a group's joins, leaves, updates and leader changes until interrupted",
		Long: `watch prints the group's current members, then every join, leave and
capabilities update and every leader change, until SIGINT/SIGTERM (exit 0),
the group is deleted (exit 3) or the backend fails (exit 1). With --json each
event is one JSON object on its own line.`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			group := args[0]
			return g.inspect(func(ctx context.Context, b *backend.Backend) error {
				gw, err := b.WatchGroup(ctx, group)
				if err != nil {
					return err
				}
				defer gw.Close()
				lw, err := b.ObserveLeader(ctx, group)
				if err != nil {
					return err
				}
				defer lw.Close()
				for _, m := range gw.Initial() {
					g.printEvent("member", m)
				}
				events, changes := gw.Events(), lw.Changes()
				for {
					select {
					case ev, ok := <-events:
						if !ok {
							if ctx.Err() != nil {
								return nil
							}
							return gw.Err()
						}
						switch ev.Type {
						case backend.EventResync:
							if g.json {
								ms := make([]any, 0, len(ev.Members))
								for _, m := range ev.Members {
									ms = append(ms, memberJSON(m))
								}
								g.emit(map[string]any{"event": "resync", "group": group, "members": ms})
							} else {
								fmt.Fprintf(g.stdout, "resync\t%d members\n", len(ev.Members))
							}
						case backend.EventGroupDeleted:
							if g.json {
								g.emit(map[string]any{"event": "group-deleted", "group": group})
							} else {
								fmt.Fprintf(g.stdout, "group-deleted\t%s\n", group)
							}
						default:
							g.printEvent(ev.Type.String(), ev.Member)
						}
					case c, ok := <-changes:
						if !ok {
							if ctx.Err() != nil {
								return nil
							}
							return lw.Err()
						}
						if g.json {
							if c.Held {
								g.emit(map[string]any{"event": "leader", "group": group, "member": c.Leader.Member, "token": c.Leader.Token})
							} else {
								g.emit(map[string]any{"event": "leader", "group": group, "member": nil})
							}
						} else if c.Held {
							fmt.Fprintf(g.stdout, "leader\t%s\ttoken %d\n", c.Leader.Member, c.Leader.Token)
						} else {
							fmt.Fprintf(g.stdout, "leader\t(none)\n")
						}
					case <-ctx.Done():
						return nil
					}
				}
			})
		},
	}
}

func (g *globals) printEvent(kind string, m backend.Member) {
	if g.json {
		o := memberJSON(m)
		o["event"] = kind
		g.emit(o)
		return
	}
	fmt.Fprintf(g.stdout, "%s\t%s\t%s\n", kind, m.ID, capsText(m))
}
