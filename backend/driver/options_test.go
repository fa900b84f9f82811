package driver

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

var testSpecs = []OptionSpec{
	{Key: "timeout", Type: Duration, Default: "10", Doc: "t"},
	{Key: "lock_timeout", Type: Duration, DefaultDoc: "= timeout", Doc: "l"},
	{Key: "ssl", Type: Bool, Default: "false", Doc: "s"},
	{Key: "db", Type: Int, Default: "0", Doc: "d", Min: MinValue(0)},
	{Key: "ratio", Type: Float, Doc: "r"},
	{Key: "hosts", Type: Strings, Doc: "h"},
	{Key: "handler", Type: String, Default: "threading", Enum: []string{"threading"}, Doc: "x"},
	{Key: "password", Type: String, Secret: true, Doc: "p"},
	{Key: "name", Type: String, Required: true, Doc: "n"},
}

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name      string
		giveQuery string
		wantErr   string // substring of the error; "" = no error
		check     func(t *testing.T, v Values)
	}{
		{name: "defaults", giveQuery: "name=a", check: func(t *testing.T, v Values) {
			if v.Duration("timeout") != 10*time.Second || v.Bool("ssl") || v.Int("db") != 0 || v.String("handler") != "threading" {
				t.Errorf("defaults wrong: %v %v %v %v", v.Duration("timeout"), v.Bool("ssl"), v.Int("db"), v.String("handler"))
			}
			if v.IsSet("timeout") || v.IsSet("lock_timeout") {
				t.Error("IsSet true for defaulted keys")
			}
		}},
		{name: "bare seconds", giveQuery: "name=a&timeout=2.5", check: func(t *testing.T, v Values) {
			if v.Duration("timeout") != 2500*time.Millisecond || !v.IsSet("timeout") {
				t.Errorf("timeout = %v", v.Duration("timeout"))
			}
		}},
		{name: "go duration", giveQuery: "name=a&timeout=250ms", check: func(t *testing.T, v Values) {
			if v.Duration("timeout") != 250*time.Millisecond {
				t.Errorf("timeout = %v", v.Duration("timeout"))
			}
		}},
		{name: "bool forms", giveQuery: "name=a&ssl=YES", check: func(t *testing.T, v Values) {
			if !v.Bool("ssl") {
				t.Error("ssl false")
			}
		}},
		{name: "list", giveQuery: "name=a&hosts=h1:1&hosts=h2:2", check: func(t *testing.T, v Values) {
			if got := strings.Join(v.Strings("hosts"), ","); got != "h1:1,h2:2" {
				t.Errorf("hosts = %q", got)
			}
		}},
		{name: "typo suggests", giveQuery: "name=a&timout=5", wantErr: `did you mean "timeout"`},
		{name: "transposition suggests", giveQuery: "name=a&lock_tiemout=5", wantErr: `did you mean "lock_timeout"`},
		{name: "unknown lists valid", giveQuery: "name=a&zzzzzzzzzz=1", wantErr: "valid: db, handler, hosts"},
		{name: "strict bool", giveQuery: "name=a&ssl=ture", wantErr: `"ssl": value "ture" is not a boolean`},
		{name: "bad int", giveQuery: "name=a&db=2.5", wantErr: "not an integer"},
		{name: "below min", giveQuery: "name=a&db=-1", wantErr: "below the minimum"},
		{name: "bad duration", giveQuery: "name=a&timeout=soon", wantErr: "not a duration"},
		{name: "negative duration", giveQuery: "name=a&timeout=-1", wantErr: "not a duration"},
		{name: "repeated single", giveQuery: "name=a&db=1&db=2", wantErr: "given 2 times"},
		{name: "enum", giveQuery: "name=a&handler=eventlet", wantErr: "not one of threading"},
		{name: "required", giveQuery: "", wantErr: `"name": is required`},
		{name: "empty typed", giveQuery: "name=a&db=", wantErr: "is empty"},
		{name: "secret hidden", giveQuery: "name=a&password=hunter2&password=x", wantErr: "given 2 times"},
		{name: "nan", giveQuery: "name=a&ratio=NaN", wantErr: "not a number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := url.ParseQuery(tt.giveQuery)
			if err != nil {
				t.Fatal(err)
			}
			v, err := ParseOptions(testSpecs, q)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("no error; want %q", tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %q does not contain %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("secret leaked: %q", err)
				}
				var oe *OptionError
				if !errors.As(err, &oe) {
					t.Fatalf("error %T is not an *OptionError", err)
				}
				if c, _ := CodeOf(err); c != CodeInvalidArgument {
					t.Fatalf("code = %v", c)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, v)
		})
	}
}

func TestSecretValueNeverShown(t *testing.T) {
	specs := []OptionSpec{{Key: "password", Type: Int, Secret: true}}
	_, err := ParseOptions(specs, url.Values{"password": {"hunter2"}})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v", err)
	}
	v, err := ParseOptions([]OptionSpec{{Key: "password", Type: String, Secret: true}}, url.Values{"password": {"hunter2"}})
	if err != nil {
		t.Fatal(err)
	}
	if v.Display("password") != "xxxxx" {
		t.Fatalf("Display = %q", v.Display("password"))
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		giveA, giveB string
		want         int
	}{
		{"", "", 0}, {"a", "", 1}, {"timout", "timeout", 1}, {"tiemout", "timeout", 1}, {"abc", "xyz", 3},
	}
	for _, tt := range tests {
		if got := editDistance(tt.giveA, tt.giveB); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.giveA, tt.giveB, got, tt.want)
		}
	}
}

func FuzzParseOptions(f *testing.F) {
	f.Add("timeout=5&ssl=true")
	f.Add("hosts=a&hosts=b&db=3")
	f.Add("timeout=1e308")
	f.Fuzz(func(t *testing.T, q string) {
		vals, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		vals.Set("name", "x")
		if _, err := ParseOptions(testSpecs, vals); err != nil {
			if c, _ := CodeOf(err); c != CodeInvalidArgument {
				t.Fatalf("code %v for %q", c, q)
			}
		}
	})
}

// A driver without options says so when given one.
func TestNoOptions(t *testing.T) {
	_, err := ParseOptions(nil, url.Values{"timeout": {"5"}})
	var oe *OptionError
	if !errors.As(err, &oe) || oe.Key != "timeout" || !strings.Contains(err.Error(), "takes no options") {
		t.Fatalf("ParseOptions without a table = %v; want an OptionError for timeout saying the driver takes no options", err)
	}
}
