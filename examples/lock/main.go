// Command lock takes a distributed lock, prints its fencing token, holds it
// for a while under the grant's context, and releases it. Run several at
// once: they take turns, and the tokens grow.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/baton-go/baton/backend"
	_ "github.com/baton-go/baton/backend/all"
	"github.com/baton-go/baton/examples/internal/exampleurl"
	"github.com/baton-go/baton/lock"
)

func main() {
	url := exampleurl.Flag("lock")
	name := flag.String("name", "example", "lock name")
	hold := flag.Duration("hold", 2*time.Second, "how long to hold the lock")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, url(), *name, *hold); err != nil {
		fmt.Fprintln(os.Stderr, "lock:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, url, name string, hold time.Duration) error {
	b, err := backend.Open(ctx, url)
	if err != nil {
		return err
	}
	defer b.Close(context.Background())
	return lock.Do(ctx, b, name, func(ctx context.Context, token uint64) error {
		fmt.Printf("%s holds %q with fencing token %d\n", b.MemberID(), name, token)
		select {
		case <-time.After(hold):
			fmt.Println("done; releasing")
			return nil
		case <-ctx.Done():
			return fmt.Errorf("stopped while holding: %w", context.Cause(ctx))
		}
	})
}
