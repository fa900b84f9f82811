package etcdproto

import "github.com/baton-go/baton/backend/driver"

// HolderImage is the local image of one lock's entries that WatchHolder
// keeps up to date from a prefix watch (no read per change), and the
// holder it last reported. The holder is the entry with the lowest create
// revision, which is its token. It is not safe for concurrent use: one
// watch owns it.
type HolderImage struct {
	emit    func(driver.Holder, bool)
	entries map[string]driver.Holder // by entry key
	last    *driver.Holder           // last reported holder; nil: none
}

// NewHolderImage returns an empty image that reports to emit, as
// driver.HolderWatcher's WatchHolder does.
func NewHolderImage(emit func(driver.Holder, bool)) *HolderImage {
	return &HolderImage{emit: emit, entries: map[string]driver.Holder{}}
}

// Clear forgets every entry (before a full read of the lock's prefix).
func (im *HolderImage) Clear() { clear(im.entries) }

// Put records the entry key written by member with create revision rev.
func (im *HolderImage) Put(key, member string, rev int64) {
	im.entries[key] = driver.Holder{Member: member, Token: uint64(rev)}
}

// Delete forgets the entry key.
func (im *HolderImage) Delete(key string) { delete(im.entries, key) }

// Report emits the holder when it changed since the last report, or
// always when force is set.
func (im *HolderImage) Report(force bool) {
	var h driver.Holder
	held := false
	for _, e := range im.entries {
		if !held || e.Token < h.Token {
			h, held = e, true
		}
	}
	switch {
	case !held && (force || im.last != nil):
		im.last = nil
		im.emit(driver.Holder{}, false)
	case held && (force || im.last == nil || *im.last != h):
		im.last = &h
		im.emit(h, true)
	}
}
