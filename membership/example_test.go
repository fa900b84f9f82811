package membership_test

import (
	"context"
	"fmt"
	"log"

	"github.com/baton-go/baton/backend"
	_ "github.com/baton-go/baton/backend/membackend"
	"github.com/baton-go/baton/membership"
)

// Join a group with capabilities (msgpack, as tooz publishes them) and
// list its members.
func ExampleGroup_Join() {
	ctx := context.Background()
	b, err := backend.Open(ctx, "mem://example-join", backend.WithMemberID("worker-1"))
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close(ctx)
	g, err := membership.NewGroup(b, "workers")
	if err != nil {
		log.Fatal(err)
	}
	if err := g.Join(ctx, membership.CreateIfMissing(), membership.WithCapabilitiesValue(map[string]int{"weight": 2})); err != nil {
		log.Fatal(err)
	}
	ms, err := g.Members(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range ms {
		var caps struct {
			Weight int `msgpack:"weight"`
		}
		if err := m.Decode(&caps); err != nil {
			log.Fatal(err)
		}
		fmt.Println(m.ID, caps.Weight)
	}
	// Output: worker-1 2
}

// Watch a group: the watch starts from a snapshot (Initial) and then
// delivers each change once, in order.
func ExampleGroup_Watch() {
	ctx := context.Background()
	a, err := backend.Open(ctx, "mem://example-watch", backend.WithMemberID("a"))
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close(ctx)
	ga, _ := membership.NewGroup(a, "workers")
	if err := ga.Join(ctx, membership.CreateIfMissing()); err != nil {
		log.Fatal(err)
	}
	w, err := ga.Watch(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	fmt.Println("initial:", len(w.Initial()), "member")

	b, err := backend.Open(ctx, "mem://example-watch", backend.WithMemberID("b"))
	if err != nil {
		log.Fatal(err)
	}
	gb, _ := membership.NewGroup(b, "workers")
	if err := gb.Join(ctx); err != nil {
		log.Fatal(err)
	}
	if err := gb.Leave(ctx); err != nil {
		log.Fatal(err)
	}
	_ = b.Close(ctx)
	for ev := range w.Events() {
		if ev.Type == membership.Joined || ev.Type == membership.Left {
			fmt.Println(ev.Type, ev.Member.ID)
		}
		if ev.Type == membership.Left {
			break
		}
	}
	// Output:
	// initial: 1 member
	// joined b
	// left b
}
