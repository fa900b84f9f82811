package election_test

import (
	"context"
	"fmt"

	"github.com/baton-go/baton/backend"
	_ "github.com/baton-go/baton/backend/membackend"
	"github.com/baton-go/baton/election"
)

// Run a singleton job: only the elected member runs it, under a context
// that ends the moment leadership is lost.
func ExampleRun() {
	ctx := context.Background()
	b, err := backend.Open(ctx, "mem://example-election", backend.WithMemberID("worker-1"))
	if err != nil {
		panic(err)
	}
	defer b.Close(ctx)
	err = election.Run(ctx, b, "billing", func(ctx context.Context) error {
		fmt.Println("leading; running the singleton job once")
		return nil // returning resigns
	}, election.OnElected(func(t election.Term) {
		fmt.Println("elected:", t.Leader)
	}))
	fmt.Println("err:", err)
	// Output:
	// elected: worker-1
	// leading; running the singleton job once
	// err: <nil>
}
