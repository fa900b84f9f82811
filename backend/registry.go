package backend

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/baton-go/baton/backend/driver"
)

// The default URL registry: the one piece of package-level mutable state.
var registry = struct {
	sync.RWMutex
	byScheme map[string]*driver.Info
	infos    []*driver.Info
}{byScheme: map[string]*driver.Info{}}

// driverPackages maps every scheme a baton driver package serves to that
// package, so an unknown-scheme error can name the missing import. Only
// packages that exist are listed (a test checks that backend/all registers
// every one of these schemes).
var driverPackages = map[string]string{
	"mem":         "membackend",
	"file":        "filebackend",
	"ipc":         "ipcbackend",
	"redis":       "redisbackend",
	"rediss":      "redisbackend",
	"zookeeper":   "zkbackend",
	"kazoo":       "zkbackend",
	"etcd3":       "etcdbackend",
	"etcd3+http":  "etcdgwbackend",
	"etcd3+https": "etcdgwbackend",
	"etcd":        "etcd2backend",
	"memcached":   "memcachedbackend",
	"postgresql":  "pgbackend",
	"postgres":    "pgbackend",
	"mysql":       "mysqlbackend",
	"consul":      "consulbackend",
}

// notImplemented lists tooz's schemes that no baton driver serves, so an
// unknown-scheme error says so instead of suggesting an import.
var notImplemented = map[string]bool{
	"zake":       true,
	"kubernetes": true,
}

// Register makes a driver available under its schemes. It is meant to be
// called from a driver package's init function (a blank import then
// enables the driver). It panics when info is incomplete or a scheme is
// already registered: both are programming errors found at start-up.
func Register(info driver.Info) {
	if len(info.Schemes) == 0 || info.Open == nil || info.Name == "" {
		panic("backend: Register needs a name, at least one scheme and an Open function")
	}
	registry.Lock()
	defer registry.Unlock()
	p := &info
	for _, s := range info.Schemes {
		s = strings.ToLower(s)
		if _, dup := registry.byScheme[s]; dup {
			panic(fmt.Sprintf("backend: scheme %q registered twice", s))
		}
		registry.byScheme[s] = p
	}
	registry.infos = append(registry.infos, p)
}

// Drivers returns every registered driver, sorted by canonical scheme.
func Drivers() []driver.Info {
	registry.RLock()
	defer registry.RUnlock()
	out := make([]driver.Info, 0, len(registry.infos))
	for _, p := range registry.infos {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CanonicalScheme() < out[j].CanonicalScheme() })
	return out
}

// lookup finds the driver for scheme.
func lookup(scheme string) (*driver.Info, error) {
	registry.RLock()
	defer registry.RUnlock()
	if p, ok := registry.byScheme[scheme]; ok {
		return p, nil
	}
	known := make([]string, 0, len(registry.byScheme))
	for s := range registry.byScheme {
		known = append(known, s)
	}
	sort.Strings(known)
	msg := fmt.Sprintf("unknown scheme %q (registered: %s)", scheme, strings.Join(known, ", "))
	if pkg, ok := driverPackages[scheme]; ok {
		msg += fmt.Sprintf("; import _ \"github.com/baton-go/baton/backend/%s\" to enable it", pkg)
	} else if notImplemented[scheme] {
		msg += "; tooz's " + scheme + ":// driver is not implemented in baton"
	} else {
		msg += "; import _ \"github.com/baton-go/baton/backend/all\" enables every driver"
	}
	return nil, newError(driver.CodeInvalidArgument, "open", fmt.Errorf("%s", msg))
}
