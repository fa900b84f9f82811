package membackend_test

import (
	"context"
	"fmt"

	"github.com/baton-go/baton/backend"
	_ "github.com/baton-go/baton/backend/membackend"
)

// Open an in-process store, join a group and take a lock: every Backend
// of the process opened on mem://example shares the store.
func Example() {
	ctx := context.Background()
	b, err := backend.Open(ctx, "mem://example", backend.WithMemberID("worker-1"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close(ctx)

	if err := b.JoinCreate(ctx, "workers", []byte("weight=1")); err != nil {
		fmt.Println(err)
		return
	}
	members, err := b.Members(ctx, "workers")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("members:", len(members), members[0].ID)

	g, err := b.Lock(ctx, "report", backend.LockOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("fencing token:", g.Token())
	holder, _, _ := b.LockHolder(ctx, "report")
	fmt.Println("holder:", holder.Member, holder.Token)
	_ = g.Release(ctx)

	// Every later grant of the lock carries a larger token.
	g, _, _ = b.TryLock(ctx, "report", backend.LockOptions{})
	fmt.Println("next fencing token:", g.Token())
	_ = g.Release(ctx)
	// Output:
	// members: 1 worker-1
	// fencing token: 1
	// holder: worker-1 1
	// next fencing token: 2
}
