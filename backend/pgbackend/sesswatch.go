package pgbackend

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// sessWatchers is how many connections a Backend's session watcher may
// have; each waits for the end of one session at a time. Waiters on more
// distinct holders than that learn of their holders' ends from the
// janitor and their own retries, as without a watcher.
const sessWatchers = 2

// watchSpan bounds one wait for a session's end (watchFunc's
// lock_timeout). A wait nobody needs any more is left to run out rather
// than cancelled (a cancel request is a connection of its own and logs
// an error on the server; a cancelled pgx statement closes its
// connection, and the server goes on waiting for the lock, not reading
// the socket): so a watcher stops, or moves on to another session,
// within this span of its last waiter leaving.
const watchSpan = 250 * time.Millisecond

// sessWatch learns from the server when the sessions that hold what this
// Backend's waiters wait for end, instead of waiting for a janitor. A
// session's liveness is its session-level advisory lock (KEY, sid); the
// server frees it the moment the session ends (its client killed, its
// connection dropped). A watcher blocks on a dedicated connection in
// pg_advisory_xact_lock_shared(KEY, sid) (watchFunc, in spans of
// watchSpan), which returns when that lock is freed. The shared hold is
// transaction level, so it ends with the statement whatever happens to
// it (even when the statement fails or the connection drops), and it
// never makes the dead session look alive: the dead() test is a shared
// try too. The watcher then wakes this Backend's waiters on that session
// (their tries take its locks over) and runs the janitor, which clears
// what else the session left (holds, memberships: leave events) and
// notifies the waiters and watches of other Backends.
//
// PostgreSQL offers nothing better: a session's end runs no trigger and
// sends no notification (LISTEN hears only committed NOTIFYs, and login
// event triggers have no logoff counterpart), and polling
// pg_stat_activity or the lock is what the janitor already does. A lock
// wait is the one thing the server ends when a session ends.
//
// Exclusion never depends on it: it only makes the janitor run and the
// waiters try earlier. A watcher whose wait fails (its connection drops,
// the server refuses it) gives that session up to the janitor.
type sessWatch struct {
	c *conn

	mu      sync.Mutex
	need    map[int32]map[*sub]struct{} // session -> the waiters of its end
	watched map[int32]bool              // sessions a watcher waits for
	failed  map[int32]bool              // sessions left to the janitor
	gone    [64]int32                   // the last sessions seen ended
	goneAt  int                         // where the next goes in gone
	running int                         // watcher goroutines
	closed  bool
	wg      sync.WaitGroup
}

func newSessWatch(c *conn) *sessWatch {
	return &sessWatch{c: c, need: map[int32]map[*sub]struct{}{}, watched: map[int32]bool{}, failed: map[int32]bool{}}
}

// add registers waiter s for the end of session sid (a holder of what s
// waits for): s is woken when it ends. It starts a watcher if sid is not
// watched and fewer than sessWatchers run; otherwise a running watcher
// takes sid up when it is free. It never blocks on the server.
func (w *sessWatch) add(sid int32, s *sub) {
	if sid == 0 || sid == w.c.sid {
		return // no holder, or this session: its releases notify
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if slices.Contains(w.gone[:], sid) {
		// Seen ended: a try that still reads it as the holder (its
		// snapshot older than the janitor's commit) is woken by the
		// janitor's notification. Not watching it again keeps a holder
		// that reads as live but is not from looping.
		return
	}
	if w.need[sid] == nil {
		w.need[sid] = map[*sub]struct{}{}
	}
	w.need[sid][s] = struct{}{}
	if w.closed || w.watched[sid] || w.failed[sid] || w.running >= sessWatchers {
		return
	}
	w.watched[sid] = true
	w.running++
	w.wg.Add(1)
	go w.run(sid)
}

// drop withdraws waiter s from session sid.
func (w *sessWatch) drop(sid int32, s *sub) {
	w.mu.Lock()
	defer w.mu.Unlock()
	subs := w.need[sid]
	if subs == nil {
		return
	}
	delete(subs, s)
	if len(subs) == 0 {
		delete(w.need, sid)
		delete(w.failed, sid)
	}
}

// stop stops the watchers and waits for them; the connection's context
// has ended (Close or the session's loss), which ends their waits.
func (w *sessWatch) stop() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.wg.Wait()
}

// run is one watcher: it waits for sid's end, then for the next session
// needed, until none is.
func (w *sessWatch) run(sid int32) {
	defer w.wg.Done()
	var pc *pgx.Conn
	defer func() {
		if pc != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = pc.Close(ctx)
			cancel()
		}
	}()
	for sid != 0 {
		ended, ok := w.wait(&pc, sid)
		if ended {
			w.ended(&pc, sid)
		}
		sid = w.next(sid, ended, ok)
	}
}

// watchFunc is created on each watcher connection, as a temporary
// function (it needs no privilege on the schema, only the database's
// TEMPORARY, which PUBLIC has by default, and goes with the connection):
// it waits up to watchSpan for the session lock (k, s) to be free, and
// reports whether it was. Its exception block catches the lock timeout
// so that the server does not log an error every watchSpan; the shared
// hold, taken in the function's subtransaction, passes to the
// statement's transaction and ends with it.
var watchFunc = `CREATE FUNCTION pg_temp.baton_session_ended(k integer, s integer) RETURNS boolean
	LANGUAGE plpgsql SET lock_timeout = ` + strconv.FormatInt(watchSpan.Milliseconds(), 10) + ` AS $$
	BEGIN
		PERFORM pg_advisory_xact_lock_shared(k, s);
		RETURN true;
	EXCEPTION WHEN lock_not_available THEN
		RETURN false;
	END $$`

// wait waits up to watchSpan for the end of session sid on *pc
// (connected first if nil): ended when it ended, !ok when the wait
// failed (*pc is then closed and nil).
func (w *sessWatch) wait(pc **pgx.Conn, sid int32) (ended, ok bool) {
	c := w.c
	if *pc == nil {
		conn, err := w.connect()
		if err != nil {
			if c.ctx.Err() == nil {
				c.log.Debug("postgresql session watcher: connect", zap.Error(err))
			}
			return false, false
		}
		*pc = conn
	}
	// Bounded by watchSpan; the connection's end (Close, the session's
	// loss) cuts it short.
	err := (*pc).QueryRow(c.ctx, `SELECT pg_temp.baton_session_ended(`+c.q.key+`, $1)`, sid).Scan(&ended)
	if err == nil {
		return ended, true
	}
	if c.ctx.Err() == nil {
		c.log.Debug("postgresql session watcher: wait", zap.Int32("sid", sid), zap.Error(err))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_ = (*pc).Close(ctx)
	cancel()
	*pc = nil
	return false, false
}

// connect opens a watcher connection and creates watchFunc on it.
func (w *sessWatch) connect() (*pgx.Conn, error) {
	c := w.c
	cfg := c.s.conn.Copy()
	cfg.RuntimeParams["statement_timeout"] = "0"
	ctx, cancel := context.WithTimeout(c.ctx, max(c.s.ttl, time.Second))
	defer cancel()
	pc, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := pc.Exec(ctx, watchFunc); err != nil {
		_ = pc.Close(context.Background())
		return nil, err
	}
	return pc, nil
}

// ended wakes session sid's waiters in this Backend, now that it ended,
// and runs the janitor (on the watcher's connection).
func (w *sessWatch) ended(pc **pgx.Conn, sid int32) {
	c := w.c
	w.mu.Lock()
	subs := w.need[sid]
	delete(w.need, sid)
	delete(w.failed, sid)
	w.gone[w.goneAt] = sid
	w.goneAt = (w.goneAt + 1) % len(w.gone)
	w.mu.Unlock()
	for s := range subs {
		s.push(note{})
	}
	ctx, cancel := context.WithTimeout(c.ctx, max(c.s.ttl/3, 10*time.Millisecond))
	if _, err := (*pc).Exec(ctx, c.q.janitor, c.sid); err != nil && c.ctx.Err() == nil {
		c.log.Debug("postgresql session watcher: janitor", zap.Error(err))
	}
	cancel()
	if (*pc).IsClosed() {
		*pc = nil // cut off by the timeout: the next wait connects again
	}
}

// next returns the session the watcher that waited for sid waits for
// now (sid again while it lives and is needed), or 0 when it stops.
func (w *sessWatch) next(sid int32, ended, ok bool) int32 {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.watched, sid)
	if !ok && w.need[sid] != nil {
		w.failed[sid] = true
	}
	if w.closed || w.c.ctx.Err() != nil {
		w.running--
		return 0
	}
	if !ended && ok && w.need[sid] != nil {
		w.watched[sid] = true
		return sid
	}
	for s := range w.need {
		if !w.watched[s] && !w.failed[s] {
			w.watched[s] = true
			return s
		}
	}
	w.running--
	return 0
}
