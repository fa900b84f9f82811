package partitioner_test

import (
	"context"
	"fmt"
	"log"
	"sync"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/partitioner"
)

// New shares the partitions of a group among its members; a member alone
// owns them all. Keys map to partitions, and the member that owns a key's
// partition does its work.
func ExampleNew() {
	ctx := context.Background()
	b, err := backend.Open(ctx, "mem://example-new", backend.WithMemberID("worker-1"))
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close(ctx)
	gained := make(chan []int, 1)
	p, err := partitioner.New(ctx, b, "orders", partitioner.WithPartitions(8),
		partitioner.OnRebalance(func(r partitioner.Rebalance) {
			if len(r.Gained) > 0 {
				gained <- r.Gained
			}
		}))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close(ctx)
	fmt.Println("gained:", <-gained)
	fmt.Println("order-17 is in partition", p.Partition([]byte("order-17")))
	fmt.Println("owned by self:", p.OwnedBySelf([]byte("order-17")))
	// Output:
	// gained: [0 1 2 3 4 5 6 7]
	// order-17 is in partition 5
	// owned by self: true
}

// OnRebalance starts a worker for every gained partition under the
// partition's context (carried by the Rebalance, so the callback needs no
// reference to the Partitioner) and waits, for every lost partition, for
// its worker to stop: in Exclusive mode the partition's lock is released
// only after the callback returns, so no other member starts on it
// before this one has stopped.
func ExampleOnRebalance() {
	ctx := context.Background()
	b, err := backend.Open(ctx, "mem://example-rebalance", backend.WithMemberID("worker-1"))
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close(ctx)
	var mu sync.Mutex
	workers := map[int]chan struct{}{}
	ready := make(chan struct{})
	work := func(pctx context.Context, part int, done chan struct{}) {
		defer close(done)
		<-pctx.Done() // process the partition's keys until it is lost
	}
	p, err := partitioner.New(ctx, b, "orders", partitioner.WithPartitions(4),
		partitioner.OnRebalance(func(r partitioner.Rebalance) {
			mu.Lock()
			defer mu.Unlock()
			for _, part := range r.Lost {
				<-workers[part] // its context is cancelled: wait for it to stop
				delete(workers, part)
			}
			for _, part := range r.Gained {
				done := make(chan struct{})
				workers[part] = done
				go work(r.Contexts[part], part, done)
			}
			if len(r.Gained) > 0 {
				close(ready)
			}
		}))
	if err != nil {
		log.Fatal(err)
	}
	<-ready
	mu.Lock()
	fmt.Println("workers:", len(workers))
	mu.Unlock()
	_ = p.Close(ctx) // reports every partition lost, then releases them
	fmt.Println("workers after Close:", len(workers))
	// Output:
	// workers: 4
	// workers after Close: 0
}

// PartitionContext is the context a partition's work runs under: it is
// cancelled when the partition is revoked by a rebalance or its lock is
// lost, with the cause.
func ExamplePartitioner_PartitionContext() {
	ctx := context.Background()
	b, err := backend.Open(ctx, "mem://example-context", backend.WithMemberID("worker-1"))
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close(ctx)
	started := make(chan struct{})
	p, err := partitioner.New(ctx, b, "orders", partitioner.WithPartitions(2),
		partitioner.OnRebalance(func(r partitioner.Rebalance) {
			if len(r.Gained) == 2 {
				close(started)
			}
		}))
	if err != nil {
		log.Fatal(err)
	}
	<-started
	pctx, ok := p.PartitionContext(1)
	fmt.Println("owned:", ok, "token > 0:", p.PartitionToken(1) > 0)
	_ = p.Close(ctx)
	<-pctx.Done()
	fmt.Println("cause:", context.Cause(pctx))
	// Output:
	// owned: true token > 0: true
	// cause: partitioner stopped: partition revoked
}

// OwnedBySelf answers, for a key, whether this member must do its work
// now: in Exclusive mode, whether it holds the lock of the key's
// partition.
func ExamplePartitioner_OwnedBySelf() {
	ctx := context.Background()
	b, err := backend.Open(ctx, "mem://example-owned", backend.WithMemberID("worker-1"))
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close(ctx)
	ready := make(chan struct{})
	p, err := partitioner.New(ctx, b, "orders", partitioner.WithPartitions(4),
		partitioner.OnRebalance(func(r partitioner.Rebalance) {
			if len(r.Owned) == 4 {
				close(ready)
			}
		}))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close(ctx)
	<-ready
	for _, key := range []string{"order-1", "order-2"} {
		owner, _ := p.Owner([]byte(key))
		fmt.Println(key, owner, p.OwnedBySelf([]byte(key)))
	}
	// Output:
	// order-1 worker-1 true
	// order-2 worker-1 true
}
