package etcdproto

import (
	"strings"
	"testing"
	"time"
)

func TestLeaseSeconds(t *testing.T) {
	tests := []struct {
		give time.Duration
		want int64
	}{
		{give: time.Millisecond, want: 1}, {give: time.Second, want: 1}, {give: 1001 * time.Millisecond, want: 2}, {give: 30 * time.Second, want: 30},
	}
	for _, tt := range tests {
		if got := LeaseSeconds(tt.give); got != tt.want {
			t.Errorf("LeaseSeconds(%v) = %d, want %d", tt.give, got, tt.want)
		}
	}
}

func TestEscape(t *testing.T) {
	tests := []struct {
		give, want string
	}{
		{give: "plain", want: "plain"},
		{give: "a/b", want: "a%2Fb"},
		{give: "a%2Fb", want: "a%252Fb"},
		{give: "..", want: ".."},
		{give: "/", want: "%2F"},
		{give: "ü x", want: "ü x"},
	}
	for _, tt := range tests {
		got := Escape(tt.give)
		if got != tt.want {
			t.Errorf("Escape(%q) = %q, want %q", tt.give, got, tt.want)
		}
		back, err := Unescape(got)
		if err != nil || back != tt.give {
			t.Errorf("Unescape(%q) = %q, %v; want %q", got, back, err, tt.give)
		}
	}
	for _, bad := range []string{"a/b", "%", "%2", "%41"} {
		if _, err := Unescape(bad); err == nil {
			t.Errorf("Unescape(%q) succeeded", bad)
		}
	}
}

// Keys of distinct names never collide, and the kinds never overlap.
func FuzzKeyspace(f *testing.F) {
	f.Add("g", "m", "g/members", "x")
	f.Add("a", "b/c", "a%2F", "%2F")
	f.Fuzz(func(t *testing.T, g1, m1, g2, m2 string) {
		if g1 == "" || g2 == "" || m1 == "" || m2 == "" {
			return
		}
		ks := NewKeyspace("ns")
		if (g1 != g2 || m1 != m2) && ks.Member(g1, m1) == ks.Member(g2, m2) {
			t.Fatalf("member keys collide: (%q,%q) (%q,%q)", g1, m1, g2, m2)
		}
		if g1 != g2 && strings.HasPrefix(ks.Member(g1, m1), ks.Group(g2)) {
			t.Fatalf("member %q of %q lies inside group %q", m1, g1, g2)
		}
		if g, ok := ks.GroupOf(ks.Group(g1)); !ok || g != g1 {
			t.Fatalf("groupOf(group(%q)) = %q, %v", g1, g, ok)
		}
		if _, ok := ks.GroupOf(ks.Member(g1, m1)); ok {
			t.Fatalf("a member key of %q reads as a group", g1)
		}
		if m, ok := ks.MemberOf(g1, ks.Member(g1, m1)); !ok || m != m1 {
			t.Fatalf("memberOf(member(%q,%q)) = %q, %v", g1, m1, m, ok)
		}
		if g1 != g2 && strings.HasPrefix(ks.LockPrefix(g1), ks.LockPrefix(g2)) {
			t.Fatalf("lock %q lies inside lock %q", g1, g2)
		}
	})
}

// tooz's etcd3gw layout: members directly below the group record, which
// lies outside the namespace; sessions and locks stay in it.
func TestWithGroupsAt(t *testing.T) {
	ks := NewKeyspace("ns").WithGroupsAt("p/tooz/groups/")
	if got, want := ks.Group("a/b"), "p/tooz/groups/a%2Fb/"; got != want {
		t.Errorf("Group = %q, want %q", got, want)
	}
	if got, want := ks.Member("g", "m"), "p/tooz/groups/g/m"; got != want {
		t.Errorf("Member = %q, want %q", got, want)
	}
	if m, ok := ks.MemberOf("g", ks.Group("g")); ok {
		t.Errorf("MemberOf(the group record) = %q, true", m)
	}
	if g, ok := ks.GroupOf(ks.Group("g")); !ok || g != "g" {
		t.Errorf("GroupOf(Group(g)) = %q, %v", g, ok)
	}
	if got, want := ks.LockEntry("l", 0x1f, 2), "ns/locks/l/1f-2"; got != want {
		t.Errorf("LockEntry = %q, want %q", got, want)
	}
	if got, want := ks.Session(0x1f), "ns/sessions/1f"; got != want {
		t.Errorf("Session = %q, want %q", got, want)
	}
}
