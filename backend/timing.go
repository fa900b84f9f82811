package backend

import (
	"fmt"
	"strings"
	"time"

	"github.com/baton-go/baton/backend/driver"
)

// Timing is the one timing model of a Backend: how a lease (a session's
// TTL, or a lock's own lease) is kept and when a grant that depends on it
// is given up.
//
// A renewal (or refresh) sent at instant s that succeeds proves the lease
// good until s+TTL: the server measured its TTL from when it received the
// request, which is later. The next renewal is sent Interval after s; its
// answer arrives within the RTT allowance (a round trip plus clock drift
// over the lease). A grant is cancelled Margin before s+TTL. So a grant
// survives a healthy renewal only when
//
//	Interval + RTT + Margin < TTL
//
// and Validate refuses every combination that breaks that rule: it would
// cancel every grant before its first renewal could land.
type Timing struct {
	// TTL is how long the server keeps the lease without hearing from its
	// holder. Zero means the lease cannot expire while the process lives
	// (a held flock, an in-process store): nothing else applies.
	TTL time.Duration
	// Interval is how often the lease is renewed or refreshed.
	Interval time.Duration
	// Margin is how long before the lease could expire every grant that
	// depends on it is cancelled.
	Margin time.Duration
	// RTT is the allowance for one round trip and the clock drift over a
	// lease.
	RTT time.Duration
}

// The defaults of the timing model, as fractions of the TTL.
const (
	// DefaultIntervalDivisor: leases are renewed every TTL/3.
	DefaultIntervalDivisor = 3
	// DefaultMarginDivisor: grants are cancelled TTL/5 before the lease
	// could expire.
	DefaultMarginDivisor = 5
	// DefaultRTTDivisor: a round trip is allowed TTL/20.
	DefaultRTTDivisor = 20
)

// NewTiming completes a timing model from ttl with the defaults for every
// zero value and validates it.
func NewTiming(ttl, interval, margin, rtt time.Duration) (Timing, error) {
	t := Timing{TTL: ttl, Interval: interval, Margin: margin, RTT: rtt}
	if ttl > 0 {
		if t.Interval == 0 {
			t.Interval = ttl / DefaultIntervalDivisor
		}
		if t.Margin == 0 {
			t.Margin = ttl / DefaultMarginDivisor
		}
		if t.RTT == 0 {
			t.RTT = ttl / DefaultRTTDivisor
		}
	}
	return t, t.Validate()
}

// Validate checks the rule Interval + RTT + Margin < TTL. The error,
// matching ErrInvalidArgument, names every value and the rule.
func (t Timing) Validate() error {
	switch {
	case t.TTL < 0 || t.Interval < 0 || t.Margin < 0 || t.RTT < 0:
		return newError(driver.CodeInvalidArgument, "timing", fmt.Errorf("negative value in %s", t.describe()))
	case t.TTL == 0:
		return nil
	case t.Interval == 0:
		return newError(driver.CodeInvalidArgument, "timing", fmt.Errorf("no renewal interval for TTL %v", t.TTL))
	case t.Interval+t.RTT+t.Margin >= t.TTL:
		return newError(driver.CodeInvalidArgument, "timing", fmt.Errorf(
			"safety margin %v + renew interval %v + RTT allowance %v = %v is not below the TTL %v "+
				"(rule: margin + interval + rtt < ttl): every grant would be cancelled before a renewal could land",
			t.Margin, t.Interval, t.RTT, t.Margin+t.Interval+t.RTT, t.TTL))
	}
	return nil
}

// LossAfter is how long after a successful renewal was sent its grants
// are cancelled unless another renewal succeeds: TTL − Margin.
func (t Timing) LossAfter() time.Duration { return t.TTL - t.Margin }

// Slack is how long renewals may fail in a row before grants are
// cancelled: TTL − Margin − Interval − RTT (positive when valid).
func (t Timing) Slack() time.Duration { return t.TTL - t.Margin - t.Interval - t.RTT }

// String describes the schedule, e.g. "TTL 30s, renewed every 10s; a
// grant is cancelled 6s before the server could expire it (20s after the
// last successful renewal was sent; 1.5s allowed per round trip)".
func (t Timing) String() string {
	if t.TTL == 0 {
		return "no TTL: the lease lasts as long as the process holds it; nothing is renewed and no margin applies"
	}
	return fmt.Sprintf("TTL %v, renewed every %v; a grant is cancelled %v before the server could expire it "+
		"(%v after the last successful renewal was sent; %v allowed per round trip)",
		ms(t.TTL), ms(t.Interval), ms(t.Margin), ms(t.LossAfter()), ms(t.RTT))
}

func (t Timing) describe() string {
	return fmt.Sprintf("ttl=%v interval=%v margin=%v rtt=%v", t.TTL, t.Interval, t.Margin, t.RTT)
}

// Timing returns the timing model of this Backend's session: the session
// TTL, the renewal interval, the Backend's safety margin and RTT
// allowance. Its TTL is zero when the session cannot expire while the
// process lives.
func (b *Backend) Timing() Timing { return b.timing }

// lockTiming returns the timing model of a grant with its own lease of
// ttl (TTL 0: bound to the session) and the given margin (0: default).
func (b *Backend) lockTiming(ttl, margin time.Duration) (Timing, error) {
	if ttl == 0 {
		st := b.timing
		if margin > 0 {
			st.Margin = margin
		}
		return st, st.Validate()
	}
	if margin == 0 {
		margin = b.o.margin
	}
	return NewTiming(ttl, 0, margin, b.o.rtt)
}

// describeSchedule explains how a connection of in with option values v
// is kept, with the default margin and RTT allowance: the renewal
// schedule of its session and of its locks, and when grants are
// cancelled. It returns "" when the driver does not say.
func describeSchedule(in driver.Info, v driver.Values) string {
	if in.Schedule == nil {
		return ""
	}
	s := in.Schedule(v)
	var b strings.Builder
	st, err := NewTiming(s.SessionTTL, s.RenewInterval, 0, 0)
	switch {
	case err != nil:
		fmt.Fprintf(&b, "session: %v", err)
	case st.TTL == 0 && s.RenewInterval > 0:
		fmt.Fprintf(&b, "session: cannot expire while the process lives (checked every %v); no margin applies", s.RenewInterval)
	case st.TTL == 0:
		b.WriteString("session: cannot expire while the process lives; no margin applies")
	default:
		fmt.Fprintf(&b, "session: renewed every %v; a grant bound to it is cancelled %v before the server could expire it "+
			"(TTL %v: %v after the last successful renewal was sent; %v allowed per round trip)",
			ms(st.Interval), ms(st.Margin), ms(st.TTL), ms(st.LossAfter()), ms(st.RTT))
	}
	b.WriteString("\nlocks: ")
	if s.LockTTL == 0 {
		b.WriteString("bound to the session (no lease of their own)")
	} else if lt, err := NewTiming(s.LockTTL, 0, 0, 0); err != nil {
		fmt.Fprintf(&b, "%v", err)
	} else {
		fmt.Fprintf(&b, "own lease of %v, refreshed every %v; a grant is cancelled %v before the server could expire it",
			ms(lt.TTL), ms(lt.Interval), ms(lt.Margin))
	}
	if s.Note != "" {
		b.WriteString("\nnote: " + s.Note)
	}
	return b.String()
}

// ms rounds d to the millisecond for display.
func ms(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
