package zkbackend

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/baton-go/baton/backend"
)

// expireSession expires b's session on the server for real, with the
// classic trick: a second connection attaches to the session with its ID
// and password, then closes it. The server deletes the session's
// ephemeral znodes at once and drops b's connection; when b reconnects
// the server answers that the session expired.
func expireSession(t testing.TB, b *backend.Backend) {
	t.Helper()
	c := connOf(t, b)
	sid, passwd := c.sess.credentials()
	// b's own connection may be dropped by the attach and re-attach at
	// once, dropping ours before the close went through: repeat until the
	// server refuses the session.
	var err error
	for range 50 {
		err = closeSessionAt(c.zk.Server(), sid, passwd)
		if errors.Is(err, errSessionGone) {
			return
		}
	}
	t.Fatalf("expire the session of %q: %v", b.MemberID(), err)
}

// errSessionGone reports that the server no longer knows the session.
var errSessionGone = errors.New("the server refused to attach to the session (expired, closed, or wrong password)")

// closeSessionAt speaks just enough of ZooKeeper's protocol to attach to
// session sid and close it. It returns errSessionGone when the server
// refuses to attach, and nil when it accepted the close request.
func closeSessionAt(addr string, sid int64, passwd []byte) error {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer nc.Close()
	if err := nc.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	// ConnectRequest: protocolVersion, lastZxidSeen, timeOut, sessionId, passwd.
	req := binary.BigEndian.AppendUint32(nil, 0)
	req = binary.BigEndian.AppendUint64(req, 0)
	req = binary.BigEndian.AppendUint32(req, 10000)
	req = binary.BigEndian.AppendUint64(req, uint64(sid))
	req = binary.BigEndian.AppendUint32(req, uint32(len(passwd)))
	req = append(req, passwd...)
	if err := writeFrame(nc, req); err != nil {
		return err
	}
	resp, err := readFrame(nc)
	if err != nil {
		return fmt.Errorf("connect reply: %w", err) // dropped for a competing attach
	}
	if len(resp) < 16 || int64(binary.BigEndian.Uint64(resp[8:])) != sid {
		return errSessionGone
	}
	// Request header: xid 1, type closeSession (-11).
	closeReq := binary.BigEndian.AppendUint32(nil, 1)
	closeReq = binary.BigEndian.AppendUint32(closeReq, uint32(0xFFFFFFF5))
	if err := writeFrame(nc, closeReq); err != nil {
		return err
	}
	// The server closes the connection once the session is closed; some
	// versions reply first.
	if _, err := readFrame(nc); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("close reply: %w", err)
	}
	return nil
}

func writeFrame(w io.Writer, b []byte) error {
	_, err := w.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...))
	return err
}

func readFrame(r io.Reader) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(n[:]))
	_, err := io.ReadFull(r, b)
	return b, err
}
