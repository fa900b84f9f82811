// Command membership-watch joins a group and prints every join, leave and
// capabilities change of its members as they happen.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/baton-go/baton/backend"
	_ "github.com/baton-go/baton/backend/all"
	"github.com/baton-go/baton/examples/internal/exampleurl"
	"github.com/baton-go/baton/membership"
)

func main() {
	url := exampleurl.Flag("membership-watch")
	group := flag.String("group", "watchers", "group to join and watch")
	role := flag.String("role", "worker", "role published in the capabilities")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, url(), *group, *role); err != nil {
		fmt.Fprintln(os.Stderr, "membership-watch:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, url, group, role string) error {
	b, err := backend.Open(ctx, url)
	if err != nil {
		return err
	}
	defer b.Close(context.Background())
	g, err := membership.NewGroup(b, group)
	if err != nil {
		return err
	}
	caps := map[string]string{"role": role}
	if err := g.Join(ctx, membership.WithCapabilitiesValue(caps), membership.CreateIfMissing()); err != nil {
		return err
	}
	w, err := g.Watch(ctx)
	if err != nil {
		return err
	}
	defer w.Close()
	for _, m := range w.Initial() {
		fmt.Printf("member %s %s\n", m.ID, describe(m))
	}
	for ev := range w.Events() {
		switch ev.Type {
		case membership.Resync:
			fmt.Printf("resync: %d members\n", len(ev.Members))
		case membership.GroupDeleted:
			fmt.Println("group deleted")
		default:
			fmt.Printf("%s %s %s\n", ev.Type, ev.Member.ID, describe(ev.Member))
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return w.Err()
}

func describe(m membership.Member) string {
	var caps map[string]string
	if err := m.Decode(&caps); err != nil {
		return fmt.Sprintf("(%d bytes of capabilities)", len(m.Capabilities))
	}
	return fmt.Sprint(caps)
}
