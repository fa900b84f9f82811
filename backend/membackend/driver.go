package membackend

import (
	"errors"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

// scheme is the URL scheme this driver serves.
const scheme = "mem"

func init() { backend.Register(info()) }

// info is the driver's registration record.
func info() driver.Info {
	return driver.Info{
		Name:    "In-memory",
		Schemes: []string{scheme},
		Summary: "An in-process store for tests, examples and single-process programs, replacing tooz's zake. " +
			"The host part names the store: every Backend of the process opened on mem://NAME shares it, " +
			"different names are isolated, and mem:// is the default store (name \"\"). " +
			"Nothing crosses the process boundary and nothing is persisted: a store lives until its last " +
			"connection closes while it has no groups left. Every primitive is native and linearizable " +
			"(one mutex per store): FIFO blocking lock waits, shared locks (refused while an exclusive " +
			"waiter is queued), breaking locks, pushed group and lock-holder watches. " +
			"Liveness is a session per connection that never times out; it ends when the connection " +
			"closes or a test expires it with ExpireSession, releasing the member's locks and memberships at once. " +
			"Fencing tokens count up per store and continue where they left off when a dropped store is " +
			"re-created, so they strictly increase per lock for the life of the process (strong within the process). There is no server to restart or fail over; " +
			"ExpireSession, SetUnreachable and SetDelay inject session loss, disconnection and latency.",
		URLForm:         "mem://[NAME]",
		Examples:        []string{"mem://", "mem:///", "mem://default", "mem://test-42", "mem://app.locks_1"},
		Characteristics: characteristics,

		CharacteristicsFor: func(v driver.Values) driver.Characteristics {
			c := characteristics
			if v.Duration(optTTL) > 0 && v.String(optLiveness) != "session" {
				c.Liveness = driver.LivenessTTL
				c.NonTimeoutBased = false
			}
			return c
		},
		Options:  options(),
		Schedule: schedule,
		Check:    check,
		Open:     open,
	}
}

// storeName derives the store name from a parsed mem:// URL: its single
// host, or "" when it has none.
func storeName(user string, passwordSet bool, hosts []string, path string) (string, error) {
	switch {
	case user != "" || passwordSet:
		return "", driver.Wrap(driver.CodeInvalidArgument, errors.New("mem:// takes no user information"))
	case len(hosts) > 1:
		return "", driver.Wrap(driver.CodeInvalidArgument, errors.New("mem:// takes one store name, not a host list"))
	case path != "" && path != "/":
		return "", driver.Wrap(driver.CodeInvalidArgument, errors.New("mem:// takes no path; the host part names the store"))
	case len(hosts) == 1:
		return hosts[0], nil
	}
	return "", nil
}

// characteristics are those of a session-mode connection.
var characteristics = driver.Characteristics{
	DistributedAcrossThreads: true,
	NonTimeoutBased:          true,
	Linearizable:             true,
	Sequential:               true,
	Causal:                   true,
	Serializable:             true,
	SameViewUnderPartitions:  true,
	SameViewAcrossClients:    true,
	Liveness:                 driver.LivenessSession,
	Watch:                    driver.WatchPush,
	Fencing:                  driver.FencingStrong,
	SharedLocks:              true,
}

// check validates cfg as open does before it contacts a server; see
// driver.Info.Check.
func check(cfg *driver.Config) error {
	if _, err := storeName(cfg.Username, cfg.PasswordSet, cfg.Hosts, cfg.Path); err != nil {
		return err
	}
	return checkLeaseMode(cfg.Options)
}
