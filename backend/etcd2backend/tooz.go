package etcd2backend

import (
	"encoding/base64"
	"fmt"
	"regexp"

	"github.com/baton-go/baton/backend/driver"
)

// compat=tooz: tooz's etcd driver (drivers/etcd.py) has locks only. Its
// lock is the key /v2/keys/<urlsafe-base64(name)> at the top of the
// keyspace, created with PUT prevExist=false and ttl=lock_timeout (no
// value), kept by PUT prevExist=true ttl, released by DELETE
// prevIndex=<modifiedIndex>, waited for with a long poll on the key. In
// compat=tooz mode baton's user locks use that key with the same
// create-if-absent and TTL, so a baton holder and a tooz holder exclude
// each other; baton's value (x:<nonce>:<member>) still names its grants,
// and its token is still the key's createdIndex. Shared grants put their
// marker on the same key, so tooz waits for them too. Everything tooz
// lacks on this driver (groups, members, leaders, the waiters' queue)
// keeps baton's layout under the namespace.

const compatDoc = "With tooz, user locks use tooz's keys (/<urlsafe-base64(name)> at the top of the keyspace, create-if-absent with lock_timeout as TTL), so baton and tooz holders exclude each other; groups, members, leaders and baton's queue of waiters keep baton's layout (tooz's etcd driver has none); a tooz holder is reported with an empty member ID (tooz stores none) and takes no token (fencing is partial)."

// toozLockKey is tooz's key of lock name: Base64LockEncoder's encoding
// (URL-safe base64 with padding) of the name's bytes, below dir.
func toozLockKey(dir, name string) string {
	return dir + "/" + base64.URLEncoding.EncodeToString([]byte(name))
}

// toozDirRE is what tooz_lock_dir accepts: key segments that need no
// escaping and are not hidden (a leading '_').
var toozDirRE = regexp.MustCompile(`^[A-Za-z0-9.-][A-Za-z0-9._-]*(/[A-Za-z0-9.-][A-Za-z0-9._-]*)*$`)

// resolveTooz reads compat and tooz_lock_dir.
func (s *settings) resolveTooz(o driver.Values) error {
	s.tooz = o.String("compat") == driver.CompatTooz
	if !o.IsSet("tooz_lock_dir") {
		return nil
	}
	dir := o.String("tooz_lock_dir")
	switch {
	case !s.tooz:
		return fmt.Errorf("option tooz_lock_dir needs compat=tooz")
	case !toozDirRE.MatchString(dir) || dir == "." || dir == "..":
		return fmt.Errorf("tooz_lock_dir %q: want key segments of letters, digits, '.', '-' and '_' (not leading) separated by '/'", dir)
	}
	s.toozDir = "/" + dir
	return nil
}

// withTooz sets the tooz lock keys of a compat=tooz connection.
func (k keyspace) withTooz(s *settings) keyspace {
	k.tooz, k.toozDir = s.tooz, s.toozDir
	return k
}

// characteristicsFor: in compat=tooz mode fencing is partial (tooz holders
// take no token).
func characteristicsFor(v driver.Values) driver.Characteristics {
	ch := characteristics
	if v.String("compat") == driver.CompatTooz {
		ch.Fencing = driver.FencingPartial
	}
	return ch
}

// holderOf decodes a lock key's holder; in compat=tooz mode a key that is
// neither baton's exclusive record nor its shared marker is a tooz holder,
// whose member tooz does not record.
func (c *conn) holderOf(n *node) (driver.Holder, bool) {
	if h, ok := holderOf(n); ok {
		return h, true
	}
	if c.keys.tooz && !isMarker(n.Value) && !n.Dir {
		return driver.Holder{Token: n.CreatedIndex}, true
	}
	return driver.Holder{}, false
}
