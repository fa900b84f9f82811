package hashring_test

import (
	"errors"
	"fmt"
	"log"

	"github.com/baton-go/baton/hashring"
)

func Example() {
	r, err := hashring.New()
	if err != nil {
		log.Fatal(err)
	}
	for _, node := range []string{"node-a", "node-b", "node-c"} {
		if err := r.Add(node, 1); err != nil {
			log.Fatal(err)
		}
	}
	owner, _ := r.Owner([]byte("user:42"))
	fmt.Println("owner:", owner)
	fmt.Println("replicas:", r.Owners([]byte("user:42"), 2))
	fmt.Println("nodes:", r.Nodes(), "points:", r.Points())
	// Output:
	// owner: node-a
	// replicas: [node-a node-c]
	// nodes: [node-a node-b node-c] points: 3072
}

func ExampleRing_Owners() {
	r, err := hashring.New()
	if err != nil {
		log.Fatal(err)
	}
	for _, node := range []string{"node-a", "node-b", "node-c", "node-d"} {
		if err := r.Add(node, 1); err != nil {
			log.Fatal(err)
		}
	}
	key := []byte("invoice-2024-0001")
	fmt.Println(r.Owners(key, 3))
	// Skip the primary, known to be down: its successors move up.
	fmt.Println(r.Owners(key, 3, "node-d"))
	// Never more than the nodes that own points.
	fmt.Println(len(r.Owners(key, 10)))
	// Output:
	// [node-d node-a node-c]
	// [node-a node-c node-b]
	// 4
}

func ExampleRing_SetWeight() {
	r, err := hashring.New()
	if err != nil {
		log.Fatal(err)
	}
	_ = r.Add("small", 1)
	_ = r.Add("big", 1)
	if err := r.SetWeight("big", 3); err != nil {
		log.Fatal(err)
	}
	counts := map[string]int{}
	for i := range 10000 {
		owner, _ := r.Owner(fmt.Appendf(nil, "job-%d", i))
		counts[owner]++
	}
	fmt.Printf("big owns %.0f%% of the keys\n", float64(counts["big"])/100)
	// Output:
	// big owns 75% of the keys
}

func ExampleToozCompatible() {
	// The same placement as Python's tooz.hashring.HashRing(["foo", "bar", "baz"]).
	r, err := hashring.New(hashring.ToozCompatible())
	if err != nil {
		log.Fatal(err)
	}
	for _, node := range []string{"foo", "bar", "baz"} {
		if err := r.Add(node, 1); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println(r.Owners([]byte("fake"), 3))
	fmt.Println(r.Owners([]byte("fake-again"), 3))
	fmt.Println(r.Points())
	// Output:
	// [foo bar baz]
	// [bar baz foo]
	// 96
}

func ExampleRing_Remove() {
	r, err := hashring.New()
	if err != nil {
		log.Fatal(err)
	}
	_ = r.Add("node-a", 1)
	err = r.Remove("node-z")
	fmt.Println(errors.Is(err, hashring.ErrUnknownNode))
	// Output:
	// true
}
