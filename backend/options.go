package backend

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/baton-go/baton/backend/driver"
)

// Characteristics are the facts a backend reports: tooz's ten plus
// liveness, watch kind, fencing strength and eviction.
type Characteristics = driver.Characteristics

// Characteristic names one fact that Require can demand.
type Characteristic = driver.Characteristic

// The characteristics Require accepts.
const (
	AcrossThreads           = driver.AcrossThreads
	AcrossProcesses         = driver.AcrossProcesses
	AcrossHosts             = driver.AcrossHosts
	NonTimeoutBased         = driver.NonTimeoutBased
	Linearizable            = driver.Linearizable
	Sequential              = driver.Sequential
	Causal                  = driver.Causal
	Serializable            = driver.Serializable
	SameViewUnderPartitions = driver.SameViewUnderPartitions
	SameViewAcrossClients   = driver.SameViewAcrossClients
	SessionLiveness         = driver.SessionLiveness
	PushWatch               = driver.PushWatch
	StrongFencing           = driver.StrongFencing
	NotEvictable            = driver.NotEvictable
	SharedLockSupport       = driver.SharedLockSupport
)

// Option configures Open.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	memberID     string
	memberIDSet  bool
	logger       *zap.Logger
	require      []Characteristic
	margin       time.Duration
	rtt          time.Duration
	pollInterval time.Duration
	clock        Clock
	observer     Observer
}

// WithMemberID sets this Backend's member identity: a non-empty UTF-8
// string of at most 1 KiB (an empty one is an error, not the default).
// The default is
// "hostname-pid-random".
func WithMemberID(id string) Option {
	return optionFunc(func(o *options) { o.memberID, o.memberIDSet = id, true })
}

// WithLogger sets the logger; the default discards everything.
func WithLogger(l *zap.Logger) Option { return optionFunc(func(o *options) { o.logger = l }) }

// Require makes Open fail, before connecting, when the driver lacks any
// of cs; the error (ErrUnimplemented) names what is missing.
func Require(cs ...Characteristic) Option {
	return optionFunc(func(o *options) { o.require = append(o.require, cs...) })
}

// WithSafetyMargin sets the default safety margin of grants: a grant whose
// lease (measured from when the acquiring request was sent) may expire
// within the margin is reported lost. The timing model (see Timing)
// refuses, at Open and at every acquisition, a margin that leaves no room
// to renew: margin + renew interval + RTT allowance must be below the
// TTL. The default is a fifth of the TTL. It applies to session backends
// too: their grants are cancelled when nothing was heard from the server
// for TTL − margin.
func WithSafetyMargin(d time.Duration) Option {
	return optionFunc(func(o *options) { o.margin = d })
}

// WithRTTAllowance sets the timing model's allowance for one round trip
// and the clock drift over a lease (see Timing). The default is a
// twentieth of the TTL.
func WithRTTAllowance(d time.Duration) Option {
	return optionFunc(func(o *options) { o.rtt = d })
}

// WithPollInterval sets how often emulated (polling) watches re-list a
// group or a leader. The default is 500ms.
func WithPollInterval(d time.Duration) Option {
	return optionFunc(func(o *options) { o.pollInterval = d })
}

// WithClock replaces the clock, for tests.
func WithClock(c Clock) Option { return optionFunc(func(o *options) { o.clock = c }) }

// DefaultPollInterval is the polling period of emulated watches.
const DefaultPollInterval = 500 * time.Millisecond

func (o *options) validate() error {
	if o.memberID == "" && !o.memberIDSet {
		o.memberID = defaultMemberID()
	}
	if err := checkName("member ID", o.memberID); err != nil {
		return err
	}
	if o.logger == nil {
		o.logger = zap.NewNop()
	}
	if o.clock == nil {
		o.clock = realClock{}
	}
	if o.pollInterval == 0 {
		o.pollInterval = DefaultPollInterval
	}
	if o.pollInterval < time.Millisecond {
		return newError(driver.CodeInvalidArgument, "open", fmt.Errorf("poll interval %v is below 1ms", o.pollInterval))
	}
	if o.margin < 0 {
		return newError(driver.CodeInvalidArgument, "open", fmt.Errorf("negative safety margin %v", o.margin))
	}
	if o.rtt < 0 {
		return newError(driver.CodeInvalidArgument, "open", fmt.Errorf("negative RTT allowance %v", o.rtt))
	}
	return nil
}

func defaultMemberID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "host"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Clock is the time source of a Backend. Tests may replace it.
type Clock = driver.Clock

// Timer is a stoppable one-shot timer.
type Timer = driver.Timer

type realClock = driver.RealClock
