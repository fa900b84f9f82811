// Package exampleurl picks the backend URL of the example programs: the
// -url flag, else $BATON_URL, else a file:// directory under the temp dir
// (no server needed).
package exampleurl

import (
	"flag"
	"os"
	"path/filepath"
)

// Flag registers -url and returns a function resolving the URL after
// flag.Parse.
func Flag(name string) func() string {
	u := flag.String("url", "", "backend URL (default $BATON_URL, else file://"+filepath.Join(os.TempDir(), "baton-"+name)+")")
	return func() string {
		switch {
		case *u != "":
			return *u
		case os.Getenv("BATON_URL") != "":
			return os.Getenv("BATON_URL")
		}
		return "file://" + filepath.Join(os.TempDir(), "baton-"+name)
	}
}
