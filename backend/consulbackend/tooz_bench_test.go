package consulbackend

import (
	"context"
	"testing"

	"github.com/baton-go/baton/backend"
)

// BenchmarkToozLock measures one lock acquisition and release through a
// Backend, with baton's layout (one transaction to take the key, one to
// delete it) and with compat=tooz (tooz's protocol: PUT ?acquire, a
// consistent read of the key for the token, one transaction to release).
func BenchmarkToozLock(b *testing.B) {
	for _, compat := range []string{"baton", "tooz"} {
		b.Run("compat="+compat, func(b *testing.B) {
			url := nsURL(singleURL(b), "compat="+compat)
			be := openBackend(b, url, "bench")
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				g, ok, err := be.TryLock(ctx, "bench", backend.LockOptions{})
				if err != nil || !ok {
					b.Fatalf("TryLock = %v, %v", ok, err)
				}
				if err := g.Release(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
