//go:build linux && (amd64 || arm64 || loong64 || mips64 || mips64le || ppc64 || ppc64le || riscv64 || s390x)

package ipcbackend

import (
	"context"
	"net/url"
	"testing"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/baton-go/baton/backend"
	"github.com/baton-go/baton/backend/driver"
)

type nopObserver struct{}

func (nopObserver) Suspended(error) {}
func (nopObserver) Resumed()        {}
func (nopObserver) Lost(error)      {}

// BenchmarkSemopPair is the floor: a non-blocking P with SEM_UNDO and a V
// on one semaphore, the system calls a lock grant and its release make.
func BenchmarkSemopPair(b *testing.B) {
	id, err := semget(0, 1, unix.IPC_CREAT|permMode) // IPC_PRIVATE
	if err != nil {
		b.Fatal(err)
	}
	defer semRemove(id)
	if _, err := semctl(id, 0, cmdSetVal, 1); err != nil {
		b.Fatal(err)
	}
	p := []sembuf{{num: 0, op: -1, flg: ipcNoWait | semUndo}}
	v := []sembuf{{num: 0, op: 1, flg: semUndo}}
	for b.Loop() {
		if err := semopNoWait(id, p); err != nil {
			b.Fatal(err)
		}
		if err := semopNoWait(id, v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConnLock is the driver alone: Conn.TryLock and Conn.Unlock of
// one key, without the backend's grant bookkeeping.
func BenchmarkConnLock(b *testing.B) {
	ctx := context.Background()
	raw := "ipc://?namespace=" + url.QueryEscape("bench-"+b.Name())
	cfg, err := backend.ParseURL(raw)
	if err != nil {
		b.Fatal(err)
	}
	c, err := open(ctx, &driver.Config{Scheme: scheme, Options: cfg.Options, MemberID: "bench", Logger: zap.NewNop(),
		Observer: nopObserver{}, Clock: driver.RealClock{}})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(ctx)
	req := driver.LockRequest{Key: "l/bench", Member: "bench"}
	b.ReportAllocs()
	for b.Loop() {
		lease, ok, err := c.TryLock(ctx, req)
		if err != nil || !ok {
			b.Fatalf("try lock: %v %v", ok, err)
		}
		if err := c.Unlock(ctx, req.Key, lease.Token); err != nil {
			b.Fatal(err)
		}
	}
}
