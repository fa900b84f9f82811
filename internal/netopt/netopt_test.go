package netopt

import (
	"net/url"
	"testing"

	"github.com/baton-go/baton/backend/driver"
)

func TestHostPort(t *testing.T) {
	tests := []struct {
		give, want string
		wantErr    bool
	}{
		{give: "h", want: "h:2379"},
		{give: "h:1", want: "h:1"},
		{give: "[::1]", want: "[::1]:2379"},
		{give: "[::1]:1", want: "[::1]:1"},
		{give: ":1", wantErr: true},
		{give: "", wantErr: true},
		{give: "[]", wantErr: true},
	}
	for _, tt := range tests {
		got, err := HostPort(tt.give, "2379")
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("HostPort(%q) = %q, %v; want %q (error %v)", tt.give, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestTLSConfig(t *testing.T) {
	specs := TLSOptionSpecs("protocol", "ca")
	tests := []struct {
		give    string
		wantTLS bool
		wantErr bool
	}{
		{give: ""},
		{give: "protocol=http"},
		{give: "protocol=https", wantTLS: true},
		{give: "protocol=http&ca_cert=x", wantErr: true},
		{give: "cert_cert=x", wantErr: true},
		{give: "ca_cert=/nonexistent", wantErr: true},
	}
	for _, tt := range tests {
		q, err := url.ParseQuery(tt.give)
		if err != nil {
			t.Fatal(err)
		}
		o, err := driver.ParseOptions(specs, q)
		if err != nil {
			t.Fatalf("ParseOptions(%q): %v", tt.give, err)
		}
		tc, err := TLSConfig(o)
		if (err != nil) != tt.wantErr || (tc != nil) != tt.wantTLS {
			t.Errorf("TLSConfig(%q) = %v, %v; want TLS %v, error %v", tt.give, tc, err, tt.wantTLS, tt.wantErr)
		}
	}
}
