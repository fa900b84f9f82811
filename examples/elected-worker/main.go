// Command elected-worker runs a singleton job: of all the copies running
// against one backend, exactly one does the work at a time. Kill the
// leader (even with kill -9) and another copy takes over.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/baton-go/baton/backend"
	_ "github.com/baton-go/baton/backend/all"
	"github.com/baton-go/baton/election"
	"github.com/baton-go/baton/examples/internal/exampleurl"
)

func main() {
	url := exampleurl.Flag("elected-worker")
	group := flag.String("group", "singleton", "election group")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, url(), *group); err != nil {
		fmt.Fprintln(os.Stderr, "elected-worker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, url, group string) error {
	b, err := backend.Open(ctx, url)
	if err != nil {
		return err
	}
	defer b.Close(context.Background())
	me := b.MemberID()
	fmt.Printf("%s: campaigning in %q on %s\n", me, group, b.Config())
	err = election.Run(ctx, b, group, func(ctx context.Context) error {
		fmt.Printf("%s: elected; working\n", me)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for n := 1; ; n++ {
			select {
			case <-ctx.Done():
				fmt.Printf("%s: stopping work: %v\n", me, context.Cause(ctx))
				return nil
			case <-tick.C:
				fmt.Printf("%s: work item %d\n", me, n)
			}
		}
	}, election.OnNewLeader(func(c election.LeaderChange) {
		if c.Held {
			fmt.Printf("%s: leader is %s (term %d)\n", me, c.Leader, c.Token)
		} else {
			fmt.Printf("%s: no leader\n", me)
		}
	}))
	if ctx.Err() != nil {
		return nil
	}
	return err
}
