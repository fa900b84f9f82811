// Package all enables every baton driver: import it for its side effect.
//
//	import _ "github.com/baton-go/baton/backend/all"
package all

import (
	_ "github.com/baton-go/baton/backend/consulbackend"    // consul://
	_ "github.com/baton-go/baton/backend/etcd2backend"     // etcd://
	_ "github.com/baton-go/baton/backend/etcdbackend"      // etcd3://
	_ "github.com/baton-go/baton/backend/etcdgwbackend"    // etcd3+http://, etcd3+https://
	_ "github.com/baton-go/baton/backend/filebackend"      // file://
	_ "github.com/baton-go/baton/backend/ipcbackend"       // ipc://
	_ "github.com/baton-go/baton/backend/membackend"       // mem://
	_ "github.com/baton-go/baton/backend/memcachedbackend" // memcached://
	_ "github.com/baton-go/baton/backend/mysqlbackend"     // mysql://
	_ "github.com/baton-go/baton/backend/pgbackend"        // postgresql://, postgres://
	_ "github.com/baton-go/baton/backend/redisbackend"     // redis://, rediss://
	_ "github.com/baton-go/baton/backend/zkbackend"        // zookeeper://, kazoo://
)
