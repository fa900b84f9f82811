package etcdgwbackend

import "github.com/baton-go/baton/internal/etcdproto"

// keyspace is etcd3://'s key layout (etcdproto.Keyspace), which both
// drivers share so that their members see each other's locks and groups,
// with tooz's keys for groups and user locks in compat=tooz mode
// (tooz.go).
type keyspace struct {
	etcdproto.Keyspace
	tooz  bool   // compat=tooz: groups and user locks at tooz's keys (tooz.go)
	tzPfx string // tooz_prefix
}

func newKeyspace(namespace string) keyspace {
	return keyspace{Keyspace: etcdproto.NewKeyspace(namespace)}
}
