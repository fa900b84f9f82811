package filebackend

import (
	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

// scheme is the URL scheme this driver serves.
const scheme = "file"

func init() { backend.Register(info()) }

// Option keys of the connection string.
const (
	optNamespace     = "namespace"
	optTimeout       = "timeout"
	optCheckInterval = "check_interval"
	optLockRetry     = "lock_retry"
	optFsync         = "fsync"
	optExecutor      = "executor"
)

// options is the option table: the single source of truth for parsing,
// validation and docs.
func options() []driver.OptionSpec {
	return []driver.OptionSpec{
		{
			Key: optNamespace, Type: driver.String, Default: "baton",
			Doc: "Subdirectory of DIR holding every file the driver writes (sessions, groups, locks); one path component. " +
				"Processes coordinate when they use the same DIR and namespace.",
		},
		{
			Key: optTimeout, Type: driver.Duration, Default: "10", Min: driver.MinValue(0),
			Doc: "Accepted for tooz compatibility (tooz counted a member alive for this long after its last heartbeat). " +
				"Here a member is alive exactly while its process holds the flock on its session file, so no timeout " +
				"applies; the value is reported as the session TTL.",
		},
		{
			Key: optCheckInterval, Type: driver.Duration, Default: "250ms", Min: driver.MinValue(0.001),
			Doc: "How often a connection checks that its session file is still its own. A session file removed by " +
				"someone else (an administrator, or ExpireSession in tests) ends the session within this interval: " +
				"its locks are released and its memberships removed.",
		},
		{
			Key: optLockRetry, Type: driver.Duration, Default: "20ms", Min: driver.MinValue(0.0001),
			Doc: "Longest pause between two attempts of a blocked Lock or Campaign. On Linux a release wakes waiters " +
				"at once through inotify and this only bounds the fallback; elsewhere it bounds the handover latency.",
		},
		{
			Key: optFsync, Type: driver.Bool, Default: "false",
			Doc: "fsync lock files after recording a grant and member files before publishing them. Without it a host " +
				"crash can lose the last writes; fencing tokens still never go back unless the clock was also set back.",
		},
		{
			Key: optExecutor, Type: driver.String, Default: "threaded",
			Enum: []string{"threaded", "thread", "threading", "synchronous", "sync"},
			Doc:  "Accepted for tooz compatibility (tooz's worker-thread choice); every value behaves the same.",
		},
	}
}

// info is the driver's registration record.
func info() driver.Info {
	return driver.Info{
		Name:    "File",
		Schemes: []string{scheme},
		Summary: "Coordination between the processes of one host through a directory: every primitive, " +
			"across threads and processes, never across hosts (do not use a network file system). " +
			"Locks are flock(2) locks on one file per lock (exclusive and shared, across processes), so a lock " +
			"is released the instant its holder closes it, exits or is killed. " +
			"Liveness is a session per connection: a flock the connection holds on its own session file. " +
			"A member whose process dies is gone at once, with no timeout (members of a stopped but living " +
			"process stay); dead members' files are removed by the next listing, and they never block DeleteGroup. " +
			"A session file removed by someone else ends the session within check_interval. " +
			"Fencing tokens are kept in each lock file under the lock: a token is the larger of the previous " +
			"token plus one and the wall clock in microseconds, so tokens strictly increase, also across host " +
			"crashes and a deleted directory, unless the clock is set back at the same time (strong on one host). " +
			"Blocked Lock calls and watches are woken by inotify on Linux (push watches) and poll elsewhere. " +
			"Every name is encoded into a file name (base32, or SHA-256 beyond 124 bytes; group and member " +
			"files keep and check the full name), so any name is valid and none can escape the directory or " +
			"collide with bookkeeping. There is no server: nothing restarts or fails over. DIR is created (mode 0700) when " +
			"missing; every process must run as a user that can write it. Linux, macOS and the BSDs only. " +
			"The URL is tooz's (file:///abs/dir?timeout=N); the layout is baton's own, not tooz's.",
		URLForm: "file:///ABSOLUTE/DIRECTORY[?options]",
		Examples: []string{
			"file:///tmp",
			"file:///tmp/tooz?timeout=10",
			"file:///var/lib/app/coordination?namespace=app",
			"file:///run/app?check_interval=100ms&lock_retry=5ms",
			"file:///tmp?executor=synchronous&fsync=true",
			"file://localhost/tmp/app",
		},
		Characteristics: driver.Characteristics{
			DistributedAcrossThreads:   true,
			DistributedAcrossProcesses: true,
			NonTimeoutBased:            true,
			Linearizable:               true,
			Sequential:                 true,
			Causal:                     true,
			SameViewUnderPartitions:    true,
			SameViewAcrossClients:      true,
			Liveness:                   driver.LivenessSession,
			Watch:                      watchKind,
			Fencing:                    driver.FencingStrong,
			SharedLocks:                true,
		},
		Options:  options(),
		Schedule: schedule,
		Check:    check,
		Open:     open,
	}
}

// check validates cfg as open does before it contacts a server; see
// driver.Info.Check.
func check(cfg *driver.Config) error {
	_, err := resolve(cfg.Username, cfg.PasswordSet, cfg.Hosts, cfg.Path, cfg.Options)
	return err
}
