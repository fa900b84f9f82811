// Package zkbackend is baton's Apache ZooKeeper driver, registered for the
// zookeeper:// scheme and its tooz alias kazoo://. Enable it with a blank
// import:
//
//	import _ "github.com/baton-go/baton/backend/zkbackend"
//
// Members are ephemeral znodes, locks and leaders follow ZooKeeper's lock
// recipe (one watch per waiter, fencing tokens from the request znode's
// creation zxid), membership and leadership changes are pushed by
// ZooKeeper watches, and the ZooKeeper session is the member's liveness:
// a disconnection puts every grant in doubt before the session can
// expire, and an expired session is reported lost. Info documents the
// URL options, the data layout and the behaviour on failures.
package zkbackend
