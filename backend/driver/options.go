package driver

import (
	"fmt"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// OptionType is the type of a connection-string option.
type OptionType int

// The option types.
const (
	// String is any text; with OptionSpec.Enum, one of a fixed set.
	String OptionType = iota + 1
	// Int is a base-10 integer.
	Int
	// Float is a decimal number.
	Float
	// Bool is true/false, 1/0, yes/no, on/off (any case); anything else is
	// an error, never false.
	Bool
	// Duration is a Go duration ("1.5s", "250ms") or a bare number of
	// seconds ("30", "2.5"), the form tooz uses.
	Duration
	// Strings is a list: the key may be repeated, each value is one item.
	Strings
)

// String returns the type's name as docs show it.
func (t OptionType) String() string {
	switch t {
	case String:
		return "string"
	case Int:
		return "int"
	case Float:
		return "float"
	case Bool:
		return "bool"
	case Duration:
		return "duration"
	case Strings:
		return "list"
	default:
		return "unknown"
	}
}

// OptionSpec declares one query key a driver accepts. A driver's table of
// specs is the single source of truth for parsing, validation and docs.
type OptionSpec struct {
	Key  string
	Type OptionType
	// Default is the documented default in the option's own syntax; it is
	// parsed like a URL value. Empty means "no default" (Values then
	// returns the type's zero value and IsSet reports false).
	Default string
	// DefaultDoc overrides how the default is shown in docs, for defaults
	// that depend on other options ("= timeout").
	DefaultDoc string
	// Doc says what the option means, in one or two sentences.
	Doc string
	// Required options must be given.
	Required bool
	// Enum lists the accepted values of a String option.
	Enum []string
	// Secret values are never shown in errors, logs or explain output.
	Secret bool
	// Min, when non-nil, is the smallest accepted value of an Int, Float
	// or Duration option (a Duration in seconds).
	Min *float64
}

// MinValue is a helper for OptionSpec.Min.
func MinValue(v float64) *float64 { return &v }

// Values holds the typed values of a parsed query, defaults included.
// It is immutable once built and safe for concurrent use.
type Values struct {
	specs map[string]OptionSpec
	vals  map[string]any
	set   map[string]bool
}

// IsSet reports whether key was given in the connection string.
func (v Values) IsSet(key string) bool { return v.set[key] }

// String returns a String option's value.
func (v Values) String(key string) string { s, _ := v.vals[key].(string); return s }

// Int returns an Int option's value.
func (v Values) Int(key string) int { i, _ := v.vals[key].(int); return i }

// Float returns a Float option's value.
func (v Values) Float(key string) float64 { f, _ := v.vals[key].(float64); return f }

// Bool returns a Bool option's value.
func (v Values) Bool(key string) bool { b, _ := v.vals[key].(bool); return b }

// Duration returns a Duration option's value.
func (v Values) Duration(key string) time.Duration { d, _ := v.vals[key].(time.Duration); return d }

// Strings returns a list option's items, in the order given.
func (v Values) Strings(key string) []string {
	s, _ := v.vals[key].([]string)
	return append([]string(nil), s...)
}

// Keys returns the keys that have a value (given or defaulted), sorted.
func (v Values) Keys() []string {
	keys := make([]string, 0, len(v.vals))
	for k := range v.vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Display returns key's value as text for explain output; secrets are
// replaced by "xxxxx".
func (v Values) Display(key string) string {
	val, ok := v.vals[key]
	if !ok {
		return ""
	}
	if v.specs[key].Secret {
		return "xxxxx"
	}
	switch x := val.(type) {
	case []string:
		return strings.Join(x, ",")
	default:
		return fmt.Sprint(x)
	}
}

// OptionError reports a bad connection-string option. Its message never
// contains the value of a secret option.
type OptionError struct {
	Key    string
	Reason string
	// Err, when set, is the underlying error (a TLS file that cannot be
	// read), for errors.Is; Reason already says it in words.
	Err error
}

func (e *OptionError) Error() string {
	return fmt.Sprintf("option %q: %s", e.Key, e.Reason)
}

// Unwrap returns the underlying error, if any.
func (e *OptionError) Unwrap() error { return e.Err }

// ParseOptions checks q against specs and returns typed values with
// defaults applied. Unknown keys, repeated single-valued keys, malformed
// values and missing required keys are errors (*OptionError, coded
// CodeInvalidArgument) that name the key; an unknown key's error suggests
// the closest valid key.
func ParseOptions(specs []OptionSpec, q url.Values) (Values, error) {
	v := Values{specs: map[string]OptionSpec{}, vals: map[string]any{}, set: map[string]bool{}}
	for _, s := range specs {
		v.specs[s.Key] = s
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s, ok := v.specs[k]
		if !ok {
			return Values{}, Wrap(CodeInvalidArgument, unknownOption(k, specs))
		}
		raw := q[k]
		if s.Type != Strings && len(raw) > 1 {
			return Values{}, Wrap(CodeInvalidArgument, &OptionError{Key: k, Reason: fmt.Sprintf("given %d times; it takes one value", len(raw))})
		}
		val, err := parseValue(s, raw)
		if err != nil {
			return Values{}, Wrap(CodeInvalidArgument, err)
		}
		v.vals[k] = val
		v.set[k] = true
	}
	for _, s := range specs {
		if v.set[s.Key] {
			continue
		}
		if s.Required {
			return Values{}, Wrap(CodeInvalidArgument, &OptionError{Key: s.Key, Reason: "is required"})
		}
		if s.Default == "" {
			continue
		}
		val, err := parseValue(s, []string{s.Default})
		if err != nil {
			return Values{}, Wrap(CodeInternal, fmt.Errorf("bad default: %w", err))
		}
		v.vals[s.Key] = val
	}
	return v, nil
}

func parseValue(s OptionSpec, raw []string) (any, error) {
	bad := func(reason string) error {
		if s.Secret {
			return &OptionError{Key: s.Key, Reason: reason}
		}
		return &OptionError{Key: s.Key, Reason: fmt.Sprintf("value %q %s", strings.Join(raw, ","), reason)}
	}
	if s.Type == Strings {
		out := make([]string, 0, len(raw))
		for _, r := range raw {
			if r == "" {
				return nil, bad("has an empty item")
			}
			out = append(out, r)
		}
		return out, nil
	}
	r := raw[0]
	if r == "" && s.Type != String {
		return nil, bad("is empty; want a " + s.Type.String())
	}
	var num float64
	var out any
	switch s.Type {
	case String:
		if len(s.Enum) > 0 && !contains(s.Enum, r) {
			return nil, bad("is not one of " + strings.Join(s.Enum, ", "))
		}
		return r, nil
	case Int:
		i, err := strconv.Atoi(r)
		if err != nil {
			return nil, bad("is not an integer")
		}
		num, out = float64(i), i
	case Float:
		f, err := strconv.ParseFloat(r, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, bad("is not a number")
		}
		num, out = f, f
	case Bool:
		b, ok := parseBool(r)
		if !ok {
			return nil, bad("is not a boolean (true/false, 1/0, yes/no, on/off)")
		}
		return b, nil
	case Duration:
		d, err := parseDuration(r)
		if err != nil {
			return nil, bad("is not a duration (\"1.5s\", \"250ms\", or seconds as a number)")
		}
		num, out = d.Seconds(), d
	default:
		return nil, bad("has an unknown type")
	}
	if s.Min != nil && num < *s.Min {
		return nil, bad(fmt.Sprintf("is below the minimum %v", *s.Min))
	}
	return out, nil
}

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "1", "t", "true", "y", "yes", "on":
		return true, true
	case "0", "f", "false", "n", "no", "off":
		return false, true
	}
	return false, false
}

func parseDuration(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > math.MaxInt64/float64(time.Second) {
			return 0, fmt.Errorf("out of range")
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d < 0 {
		return 0, fmt.Errorf("negative")
	}
	return d, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func unknownOption(key string, specs []OptionSpec) error {
	valid := make([]string, 0, len(specs))
	best, bestDist := "", math.MaxInt
	for _, s := range specs {
		valid = append(valid, s.Key)
		if d := editDistance(key, s.Key); d < bestDist {
			best, bestDist = s.Key, d
		}
	}
	sort.Strings(valid)
	reason := "unknown option"
	if best != "" && bestDist <= max(2, len(key)/3) {
		reason += fmt.Sprintf("; did you mean %q?", best)
	}
	if len(valid) == 0 {
		reason += " (this driver takes no options)"
	} else {
		reason += " (valid: " + strings.Join(valid, ", ") + ")"
	}
	return &OptionError{Key: key, Reason: reason}
}

// editDistance is the Levenshtein distance over bytes, with a transposition
// counted as one edit (optimal string alignment).
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// DurationOr returns a Duration option's value when it was given in the
// connection string, else def: for options whose default derives from
// another option ("= timeout").
func (v Values) DurationOr(key string, def time.Duration) time.Duration {
	if v.IsSet(key) {
		return v.Duration(key)
	}
	return def
}

// The values of the "compat" option (CompatOption).
const (
	// CompatBaton is the driver's own data layout, the default.
	CompatBaton = "baton"
	// CompatTooz is tooz's data layout and protocol, so that baton and
	// tooz (OpenStack's Python library) processes share groups, leaders
	// and locks on one server.
	CompatTooz = "tooz"
)

// CompatOption returns the spec of the "compat" option every driver
// declares: compat=tooz makes the connection read and write tooz's exact
// layout, so a mixed fleet of baton and tooz processes shares groups,
// members, leaders and locks (a lock held by one is refused to the
// other). doc is the driver's sentence on what its tooz mode shares and
// what it gives up; the connection's Characteristics (Info.
// CharacteristicsFor) must say the same.
func CompatOption(doc string) OptionSpec {
	return OptionSpec{
		Key:     "compat",
		Type:    String,
		Default: CompatBaton,
		Enum:    []string{CompatBaton, CompatTooz},
		Doc:     "Data layout: baton (the driver's own) or tooz (tooz's keys and protocol, shared with tooz processes on the same server). " + doc,
	}
}
