// Command baton inspects connection strings and generates the driver
// reference.
//
//	baton url explain URL   print the resolved configuration of URL
//	baton docs              print docs/drivers.md
//	baton drivers           list the registered schemes
//
// url explain is a dry run of backend.Open's validation of the connection
// string: it contacts no server, and a URL Open refuses before connecting
// is refused with the same error and exit status 2.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/baton-go/baton/backend"
	_ "github.com/baton-go/baton/backend/all"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage:
  baton url explain URL   print the resolved configuration of URL
  baton docs              print the driver reference (docs/drivers.md)
  baton drivers           list the registered schemes
`

func run(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 3 && args[0] == "url" && args[1] == "explain":
		cfg, err := backend.ParseURL(args[2])
		if err != nil {
			fmt.Fprintln(stderr, "baton:", err)
			return 2
		}
		fmt.Fprint(stdout, backend.Explain(cfg))
		return 0
	case len(args) == 1 && args[0] == "docs":
		if err := backend.WriteDriverDocs(stdout); err != nil {
			fmt.Fprintln(stderr, "baton:", err)
			return 1
		}
		return 0
	case len(args) == 1 && args[0] == "drivers":
		for _, d := range backend.Drivers() {
			fmt.Fprintf(stdout, "%-24s %s\n", strings.Join(d.Schemes, ","), d.Name)
		}
		return 0
	}
	fmt.Fprint(stderr, usage)
	return 2
}
