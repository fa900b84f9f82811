package redisbackend

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// waitPayload waits until l reports ready and then receives payload.
func waitPayload(l *listener, publish func() error, payload string, d time.Duration) error {
	timeout := time.NewTimer(d)
	defer timeout.Stop()
	ready := false
	for {
		select {
		case <-l.C():
			for _, ev := range l.drain() {
				switch {
				case ev.kind == evReady && !ready:
					ready = true
					if err := publish(); err != nil {
						return err
					}
				case ev.kind == evMessage && ev.payload == payload:
					return nil
				}
			}
		case <-timeout.C:
			return fmt.Errorf("ready=%v, %q not received within %v", ready, payload, d)
		}
	}
}

// Listeners of one channel come and go concurrently; each must really be
// subscribed once it is told it is ready: the UNSUBSCRIBE of the last
// listener leaving must never overtake the SUBSCRIBE of the next one.
func TestHubSubscriptionChurn(t *testing.T) {
	u := freshURL(t, plainURL(t))
	c := openConn(t, u, "m")
	rdb, _ := rawClient(t, openBackend(t, u, "x").Config())
	defer rdb.Close()
	ctx := testCtx(t)
	ch := c.ks.lockChannel("churn")
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				l, err := c.listen(ch)
				if err != nil {
					errs <- err
					return
				}
				payload := fmt.Sprintf("%d/%d", g, i)
				err = waitPayload(l, func() error { return rdb.Publish(ctx, ch, payload).Err() }, payload, 5*time.Second)
				l.close()
				if err != nil {
					errs <- fmt.Errorf("listener %s: %w", payload, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
