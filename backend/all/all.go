// Package all enables every baton driver: import it for its side effect.
//
//	import _ "github.com/baton-go/baton/backend/all"
package all

import (
	_ "github.com/baton-go/baton/backend/consulbackend" // consul://
	_ "github.com/baton-go/baton/backend/etcdbackend"   // etcd3://
	_ "github.com/baton-go/baton/backend/filebackend"   // file://
	_ "github.com/baton-go/baton/backend/membackend"    // mem://
	_ "github.com/baton-go/baton/backend/redisbackend"  // redis://, rediss://
	_ "github.com/baton-go/baton/backend/zkbackend"     // zookeeper://, kazoo://
)
