package drivertest

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/baton-go/baton/backend"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestUnreachableURL(t *testing.T) {
	tests := []struct {
		give string
		want string
	}{
		{give: "redis://localhost:6379", want: "redis://127.0.0.1:1"},
		{give: "redis://localhost:6379/", want: "redis://127.0.0.1:1/"},
		{give: "redis://:pw@localhost:6379?namespace=x", want: "redis://:pw@127.0.0.1:1?namespace=x"},
		{give: "zookeeper://a:1,b:2,c:3/path?timeout=5", want: "zookeeper://127.0.0.1:1/path?timeout=5"},
		{give: "mysql://u:p@h/db", want: "mysql://u:p@127.0.0.1:1/db"},
		{give: "etcd3://[::1]:2379", want: "etcd3://127.0.0.1:1"},
		{give: "mem://", want: "mem://127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			if got := unreachableURL(tt.give); got != tt.want {
				t.Errorf("unreachableURL(%q) = %q, want %q", tt.give, got, tt.want)
			}
		})
	}
}

func member(id, inc, caps string) backend.Member {
	return backend.Member{ID: id, Incarnation: inc, Capabilities: []byte(caps)}
}

func ev(typ backend.EventType, m backend.Member) backend.Event {
	return backend.Event{Type: typ, Group: "g", Member: m}
}

// The burst checker accepts valid (possibly coalesced) histories and
// rejects every kind of invalid transition, so Watch/Burst cannot pass
// vacuously.
func TestBurstModel(t *testing.T) {
	tests := []struct {
		name    string
		give    []backend.Event
		wantErr bool
	}{
		{
			name: "full history",
			give: []backend.Event{
				ev(backend.EventJoined, member("a", "1", "1")),
				ev(backend.EventCapabilitiesChanged, member("a", "1", "2")),
				ev(backend.EventLeft, member("a", "1", "2")),
				ev(backend.EventJoined, member("a", "2", "3")),
			},
		},
		{
			name: "coalesced history",
			give: []backend.Event{
				ev(backend.EventJoined, member("a", "2", "3")),
				ev(backend.EventCapabilitiesChanged, member("a", "2", "5")),
			},
		},
		{
			name:    "join twice",
			give:    []backend.Event{ev(backend.EventJoined, member("a", "1", "1")), ev(backend.EventJoined, member("a", "2", "2"))},
			wantErr: true,
		},
		{
			name: "incarnation reused",
			give: []backend.Event{
				ev(backend.EventJoined, member("a", "1", "1")),
				ev(backend.EventLeft, member("a", "1", "1")),
				ev(backend.EventJoined, member("a", "1", "2")),
			},
			wantErr: true,
		},
		{
			name:    "leave while absent",
			give:    []backend.Event{ev(backend.EventLeft, member("a", "1", "1"))},
			wantErr: true,
		},
		{
			name:    "leave of another incarnation",
			give:    []backend.Event{ev(backend.EventJoined, member("a", "1", "1")), ev(backend.EventLeft, member("a", "0", ""))},
			wantErr: true,
		},
		{
			name:    "version goes back",
			give:    []backend.Event{ev(backend.EventJoined, member("a", "1", "2")), ev(backend.EventCapabilitiesChanged, member("a", "1", "1"))},
			wantErr: true,
		},
		{
			name:    "change to the same value",
			give:    []backend.Event{ev(backend.EventJoined, member("a", "1", "2")), ev(backend.EventCapabilitiesChanged, member("a", "1", "2"))},
			wantErr: true,
		},
		{
			name:    "change while absent",
			give:    []backend.Event{ev(backend.EventCapabilitiesChanged, member("a", "1", "2"))},
			wantErr: true,
		},
		{
			name:    "resync on a healthy connection",
			give:    []backend.Event{{Type: backend.EventResync, Group: "g"}},
			wantErr: true,
		},
		{
			name:    "capabilities never written",
			give:    []backend.Event{ev(backend.EventJoined, member("a", "1", "junk"))},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newBurstModel(nil)
			var err error
			for _, e := range tt.give {
				if err = m.apply(e); err != nil {
					break
				}
			}
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("got error %v, want an error: %v", err, tt.wantErr)
			}
		})
	}
}
