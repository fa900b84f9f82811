package testutil

import (
	"testing"

	"go.uber.org/zap"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

// DriverConfig parses the connection URL u into the configuration a
// driver's opener gets, for member, with a silent logger and clk as the
// clock (the real clock when nil). It fails the test on a bad URL.
func DriverConfig(t testing.TB, u, member string, clk driver.Clock) *driver.Config {
	t.Helper()
	cfg, err := backend.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	if clk == nil {
		clk = driver.RealClock{}
	}
	return &driver.Config{
		Scheme: cfg.Scheme, Hosts: cfg.Hosts, Username: cfg.Username, Password: cfg.Password,
		PasswordSet: cfg.PasswordSet, Path: cfg.Path, Options: cfg.Options, Redacted: cfg.Redacted,
		MemberID: member, Logger: zap.NewNop(), Clock: clk,
	}
}
