package filebackend

import "path/filepath"

// layout names the files of one namespace (see the package doc):
//
//	ROOT/sessions/HEX             one per connection: its liveness flock
//	ROOT/groups/ENC/.group        the group's name
//	ROOT/groups/ENC/.lock         flock serializing the group's changes
//	ROOT/groups/ENC/ENC           one per member: its record (JSON)
//	ROOT/locks/ENC                one per lock key: the flock and its record
//	ROOT/locks/ENC.s              mutex flock for shared holders' records
//	ROOT/tmp/                     files being written, groups being deleted
//
// where ROOT is DIR/namespace, HEX a random session ID and ENC an encoded
// name (encodeName).
type layout struct {
	root, sessions, groups, locks, tmp string
}

// Internal file names inside a group directory. Encoded names never start
// with '.', so no member can collide with them.
const (
	groupNameFile = ".group"
	groupLockFile = ".lock"
)

// sharedSuffix names a lock's mutex file; '.' never occurs in an encoded
// name, so no key's lock file can collide with another key's mutex file.
const sharedSuffix = ".s"

func newLayout(root string) layout {
	return layout{
		root:     root,
		sessions: filepath.Join(root, "sessions"),
		groups:   filepath.Join(root, "groups"),
		locks:    filepath.Join(root, "locks"),
		tmp:      filepath.Join(root, "tmp"),
	}
}

func (l layout) sessionPath(name string) string { return filepath.Join(l.sessions, name) }

func (l layout) lockPath(key string) string { return filepath.Join(l.locks, encodeName(key)) }

func (l layout) lockFile(name string) string { return filepath.Join(l.locks, name) }

func (l layout) groupDir(group string) string { return filepath.Join(l.groups, encodeName(group)) }

func (l layout) memberPath(group, member string) string {
	return filepath.Join(l.groups, encodeName(group), encodeName(member))
}
