package filebackend

import (
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
)

// nameEncoding is lower-case base32 without padding: file names made of
// a-z and 2-7 only, so they are equal on case-insensitive file systems,
// never contain '/', never start with '.', and never read as "." or "..".
var nameEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// maxDirectName is the longest encoded name used as is; longer names are
// hashed, which keeps every file name (plus a short suffix) below the
// common NAME_MAX of 255 bytes.
const maxDirectName = 200

// Prefixes of encoded names: a direct encoding and a hashed one can never
// be equal, and neither can equal an internal name (those start with '.').
const (
	directPrefix = "n"
	hashPrefix   = "h"
)

// encodeName maps a group ID, member ID or lock key to a file name:
// "n" + base32(name) when that is at most maxDirectName bytes long (the
// encoding is reversible), else "h" + base32(sha256(name)) (52 characters;
// the full name is then kept inside the file and checked on every read,
// so a SHA-256 collision would be reported, never silently merged).
func encodeName(name string) string {
	e := nameEncoding.EncodeToString([]byte(name))
	if len(directPrefix)+len(e) <= maxDirectName {
		return directPrefix + e
	}
	sum := sha256.Sum256([]byte(name))
	return hashPrefix + nameEncoding.EncodeToString(sum[:])
}

// errHashedName says a file name is a hash: the name must be read from
// the file.
var errHashedName = errors.New("hashed name")

// decodeName reverses encodeName for direct names. It returns
// errHashedName for hashed names and another error for anything that is
// not an encoded name.
func decodeName(file string) (string, error) {
	switch {
	case strings.HasPrefix(file, directPrefix):
		b, err := nameEncoding.DecodeString(file[len(directPrefix):])
		if err != nil {
			return "", fmt.Errorf("file name %q: %w", file, err)
		}
		if encodeName(string(b)) != file {
			return "", fmt.Errorf("file name %q is not canonical", file)
		}
		return string(b), nil
	case strings.HasPrefix(file, hashPrefix) && len(file) == len(hashPrefix)+52:
		return "", errHashedName
	}
	return "", fmt.Errorf("file name %q is not an encoded name", file)
}
