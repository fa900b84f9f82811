package tooztest

import (
	"errors"
	"slices"
	"testing"

	"go.uber.org/goleak"
)

// The harness drives two tooz members on tooz's own file driver: they see
// each other join, one's lock is refused to the other, and tooz's errors
// come back as *Error.
func TestPeersOnToozFileDriver(t *testing.T) {
	url := "file://" + t.TempDir()
	a, b := Start(t, url, "a"), Start(t, url, "b")
	a.Must("create_group", map[string]any{"group": "g"}, nil)
	a.Must("join", map[string]any{"group": "g", "caps": map[string]any{"weight": 2}}, nil)
	b.Must("join", map[string]any{"group": "g"}, nil)
	if got := b.Members("g"); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("members seen by b = %v, want [a b]", got)
	}
	var caps map[string]int
	b.Must("capabilities", map[string]any{"group": "g", "member": "a"}, &caps)
	if caps["weight"] != 2 {
		t.Fatalf("a's capabilities seen by b = %v, want weight 2", caps)
	}
	if !a.Acquire("l") {
		t.Fatal("a could not take a free lock")
	}
	if b.Acquire("l") {
		t.Fatal("b took the lock a holds")
	}
	if !a.Release("l") || !b.Acquire("l") {
		t.Fatal("b could not take the lock a released")
	}
	_, err := a.Do("members", map[string]any{"group": "nope"})
	var te *Error
	if !errors.Is(err, ErrTooz) || !errors.As(err, &te) || te.Type != "GroupNotCreated" {
		t.Fatalf("members of a missing group: %v, want tooz's GroupNotCreated", err)
	}
	a.Stop()
	b.Kill()
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
