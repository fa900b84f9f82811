package membership

import (
	"bytes"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/baton-go/baton/backend"
)

// EncodeCapabilities encodes v as msgpack, the format tooz members use:
// Go strings become msgpack str, []byte bin, maps and structs maps (struct
// fields by their `msgpack` tag), so a Python member reading with
// msgpack.unpackb(raw=False) sees the same dict.
func EncodeCapabilities(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	enc.UseCompactFloats(true)
	enc.SetSortMapKeys(true)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode capabilities: %v: %w", err, backend.ErrInvalidArgument)
	}
	return buf.Bytes(), nil
}

// DecodeCapabilities decodes msgpack capabilities into v. Empty input
// leaves v untouched.
func DecodeCapabilities(data []byte, v any) error {
	if len(data) == 0 {
		return nil
	}
	if err := msgpack.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode capabilities: %v: %w", err, backend.ErrInvalidArgument)
	}
	return nil
}
