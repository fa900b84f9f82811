package bench

import "github.com/baton-go/baton/backend"

// refreshRequests is the number of refresh requests be sent so far.
func refreshRequests(be *backend.Backend, _ *counter) uint64 { return be.RefreshStats().Requests }
