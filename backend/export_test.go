package backend

// NewLeaderStream returns the emit function and the channel of a leader
// watch's stream, for tests of its newest-state-wins delivery.
func NewLeaderStream() (emit func(LeaderChange), ch <-chan LeaderChange) {
	s := &leaderStream{ch: make(chan LeaderChange, 1)}
	return s.emit, s.ch
}

// DriverPackages and NotImplemented are the unknown-scheme hints, for the
// test that they name only packages that exist.
var (
	DriverPackages = driverPackages
	NotImplemented = notImplemented
)
