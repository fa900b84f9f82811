package consulbackend

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// privateServer is a Consul agent (or a 3-server cluster) of one test, started with
// scripts/servers.sh in a state directory of its own, so that restarting
// or stopping it never disturbs the other packages' tests, which share
// the servers of $BATON_STATE.
type privateServer struct {
	t      testing.TB
	script string
	state  string
	env    map[string]string
}

// startPrivate starts server ("consul" or "consul-cluster") and stops it when
// the test ends. It needs $BATON_SERVERS (the path of servers.sh).
func startPrivate(t testing.TB, server string) *privateServer {
	t.Helper()
	script := os.Getenv("BATON_SERVERS")
	if script == "" {
		t.Fatal("BATON_SERVERS is not set: it is the path of scripts/servers.sh, exported by `scripts/servers.sh start` (eval \"$(scripts/servers.sh env)\")")
	}
	s := &privateServer{t: t, script: script, state: t.TempDir(), env: map[string]string{}}
	out := s.run("start", server)
	t.Cleanup(func() { s.run("stop", server) })
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "export ")
		if !ok {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		s.env[k] = strings.Trim(v, "'")
	}
	return s
}

// URL returns an environment value the script exported, e.g.
// BATON_TEST_CONSUL_URL.
func (s *privateServer) URL(key string) string {
	s.t.Helper()
	u := s.env[key]
	if u == "" {
		s.t.Fatalf("servers.sh exported no %s", key)
	}
	return u
}

// run runs servers.sh with args against the private state and returns
// its standard output.
func (s *privateServer) run(args ...string) []byte {
	s.t.Helper()
	start := time.Now()
	cmd := exec.Command(s.script, args...)
	cmd.Env = []string{"BATON_STATE=" + s.state}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BATON_STATE=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("servers.sh %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	s.t.Logf("servers.sh %s: %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	return out
}
