// Command partitioned-workers shares a key space among every running copy:
// each copy owns some partitions (exclusively: a partition is a held lock)
// and processes only the keys that fall in them. Start or stop copies and
// watch the partitions move, revoked before they are reassigned.
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
	"github.com/baton-go/baton/examples/internal/exampleurl"
	"github.com/baton-go/baton/partitioner"
)

func main() {
	url := exampleurl.Flag("partitioned-workers")
	group := flag.String("group", "workers", "group sharing the key space")
	parts := flag.Int("partitions", 16, "number of partitions")
	weight := flag.Int("weight", 1, "this worker's weight")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, url(), *group, *parts, *weight); err != nil {
		fmt.Fprintln(os.Stderr, "partitioned-workers:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, url, group string, parts, weight int) error {
	b, err := backend.Open(ctx, url)
	if err != nil {
		return err
	}
	defer b.Close(context.Background())
	me := b.MemberID()
	p, err := partitioner.New(ctx, b, group,
		partitioner.WithPartitions(parts), partitioner.WithWeight(weight),
		partitioner.OnRebalance(func(r partitioner.Rebalance) {
			if len(r.Lost) > 0 {
				fmt.Printf("%s: lost %v\n", me, r.Lost)
			}
			if len(r.Gained) > 0 {
				fmt.Printf("%s: gained %v\n", me, r.Gained)
			}
			fmt.Printf("%s: owns %v of %d (members %v)\n", me, r.Owned, parts, r.Members)
		}))
	if err != nil {
		return err
	}
	defer p.Close(context.Background())
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		key := []byte(fmt.Sprintf("order-%d", n))
		if p.OwnedBySelf(key) {
			part := p.Partition(key)
			fmt.Printf("%s: processing %s (partition %d, token %d)\n", me, key, part, p.PartitionToken(part))
		}
	}
}
