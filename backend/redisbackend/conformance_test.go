package redisbackend

import (
	"net/url"
	"strings"
	"testing"

	"github.com/baton-go/baton/backend/drivertest"
)

// conformanceOptions shorten the session TTL so that the suite's waits
// for an expired or lost session take seconds, not minutes.
var conformanceOptions = []string{"membership_timeout=3"}

func TestConformance(t *testing.T) {
	for name, base := range map[string]string{"plain": plainURL(t), "sentinel": sentinelHostList(t)} {
		t.Run(name, func(t *testing.T) {
			drivertest.Run(t, drivertest.Harness{
				NewURL:        func(t testing.TB) string { return freshURL(t, base, conformanceOptions...) },
				ExpireSession: expireSession,
			})
		})
	}
}

// sentinelHostList rewrites the sentinel URL with every sentinel in the
// host list ("redis://s1,s2,s3?sentinel=M") rather than in
// sentinel_fallback options, so that the suite's unreachable-server check,
// which replaces the host list, leaves no sentinel reachable.
func sentinelHostList(t testing.TB) string {
	t.Helper()
	raw := sentinelURL(t)
	head, query, _ := strings.Cut(raw, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		t.Fatalf("sentinel URL: %v", err)
	}
	hosts := append([]string{strings.TrimPrefix(head, "redis://")}, q["sentinel_fallback"]...)
	q.Del("sentinel_fallback")
	return "redis://" + strings.Join(hosts, ",") + "?" + q.Encode()
}
