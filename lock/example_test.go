package lock_test

import (
	"context"
	"fmt"

	"github.com/baton-go/baton/backend"
	_ "github.com/baton-go/baton/backend/membackend"
	"github.com/baton-go/baton/lock"
)

// Run work under a lock: the work's context ends if the lock is lost, and
// the fencing token goes with every write the work makes.
func ExampleDo() {
	ctx := context.Background()
	b, err := backend.Open(ctx, "mem://example-lock-do")
	if err != nil {
		panic(err)
	}
	defer b.Close(ctx)
	err = lock.Do(ctx, b, "nightly-report", func(ctx context.Context, token uint64) error {
		fmt.Println("writing the report with fencing token", token)
		return nil
	})
	fmt.Println("err:", err)
	// Output:
	// writing the report with fencing token 1
	// err: <nil>
}
