// Command demo shows baton's two jobs on a file:// backend, with no server:
// three worker processes elect one leader and share 12 partitions; the
// demo kills the leader with SIGKILL and shows the takeover and the
// rebalance, then checks from every worker's own timestamps that no two
// workers ever led at once and no partition was ever owned twice.
//
//	go run ./examples/demo          (or: make demo)
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/baton-go/baton/backend"
	_ "github.com/baton-go/baton/backend/filebackend"
	"github.com/baton-go/baton/election"
	"github.com/baton-go/baton/partitioner"
)

const (
	partitions = 12
	group      = "demo"
)

// event is one line a worker prints on stdout.
type event struct {
	T      int64  `json:"t"` // unix nanoseconds, taken in the worker
	Worker string `json:"w"`
	Kind   string `json:"ev"` // ready, elected, stepdown, gained, lost
	Token  uint64 `json:"token,omitempty"`
	Parts  []int  `json:"parts,omitempty"`
	Cause  string `json:"cause,omitempty"`
}

func main() {
	worker := flag.Bool("worker", false, "run as a worker (internal)")
	id := flag.String("id", "", "worker ID (internal)")
	url := flag.String("url", "", "backend URL (internal)")
	flag.Parse()
	if *worker {
		if err := runWorker(*url, *id); err != nil {
			fmt.Fprintln(os.Stderr, *id+":", err)
			os.Exit(1)
		}
		return
	}
	if err := supervise(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// runWorker is one worker process: leader candidate and partition owner.
func runWorker(url, id string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var mu sync.Mutex
	enc := json.NewEncoder(os.Stdout)
	emit := func(e event) {
		e.T, e.Worker = time.Now().UnixNano(), id
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(e)
	}
	b, err := backend.Open(ctx, url, backend.WithMemberID(id), backend.WithPollInterval(50*time.Millisecond))
	if err != nil {
		return err
	}
	defer b.Close(context.Background())
	p, err := partitioner.New(ctx, b, group, partitioner.WithPartitions(partitions),
		partitioner.WithRetryInterval(20*time.Millisecond),
		partitioner.OnRebalance(func(r partitioner.Rebalance) {
			if len(r.Lost) > 0 {
				emit(event{Kind: "lost", Parts: r.Lost})
			}
			if len(r.Gained) > 0 {
				emit(event{Kind: "gained", Parts: r.Gained})
			}
		}))
	if err != nil {
		return err
	}
	defer p.Close(context.Background())
	emit(event{Kind: "ready"})
	err = election.Run(ctx, b, group, func(ctx context.Context) error {
		<-ctx.Done()
		emit(event{Kind: "stepdown", Cause: context.Cause(ctx).Error()})
		return nil
	}, election.OnElected(func(t election.Term) { emit(event{Kind: "elected", Token: t.Token}) }),
		election.WithMaxPollInterval(10*time.Millisecond))
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// proc is a running worker.
type proc struct {
	id  string
	cmd *exec.Cmd
}

func supervise() error {
	start := time.Now()
	deadline := time.AfterFunc(28*time.Second, func() {
		fmt.Fprintln(os.Stderr, "demo: giving up after 28s")
		os.Exit(2)
	})
	defer deadline.Stop()
	dir, err := os.MkdirTemp("", "baton-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	url := "file://" + dir
	self, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Printf("baton demo: 3 workers on %s, %d partitions, one leader\n\n", url, partitions)
	events := make(chan event, 256)
	var procs []*proc
	var readers sync.WaitGroup
	for _, id := range []string{"w1", "w2", "w3"} {
		cmd := exec.Command(self, "-worker", "-id", id, "-url", url)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		procs = append(procs, &proc{id: id, cmd: cmd})
		readers.Add(1)
		go func() {
			defer readers.Done()
			read(out, events)
		}()
	}
	go func() {
		readers.Wait()
		close(events)
	}()
	s := newState(start)

	// Phase 1: a leader and every partition owned.
	if err := s.until(events, 15*time.Second, func() bool {
		return s.leader != "" && s.ownedCount() == partitions && s.ready == 3
	}); err != nil {
		return err
	}
	s.table("steady")
	victim := s.leader
	var vp *proc
	for _, p := range procs {
		if p.id == victim {
			vp = p
		}
	}
	// Let the view settle, then kill the leader.
	_ = s.until(events, 700*time.Millisecond, func() bool { return false })
	killAt := time.Now()
	fmt.Printf("\n%8s  kill -9 %s (the leader, pid %d)\n\n", s.since(killAt), victim, vp.cmd.Process.Pid)
	_ = vp.cmd.Process.Kill()
	_ = vp.cmd.Wait()
	s.killed(victim, killAt)
	if err := s.until(events, 10*time.Second, func() bool {
		return s.leader != "" && s.leader != victim && s.ownedCount() == partitions
	}); err != nil {
		return err
	}
	takeover := time.Unix(0, s.leaderSince).Sub(killAt)
	rebalanced := time.Unix(0, s.lastGain).Sub(killAt)
	s.table("after the takeover")

	// Phase 3: graceful stop of the others.
	for _, p := range procs {
		if p != vp {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for ev := range events {
		s.apply(ev)
	}
	for _, p := range procs {
		if p != vp {
			_ = p.cmd.Wait()
		}
	}
	doubleLeaders, doubleOwned := s.check()
	fmt.Printf("\nsummary: leader %s killed with SIGKILL; %s took over in %s; %d partitions moved (rebalanced in %s); double leaders: %d; partitions owned twice: %d; total %.1fs\n",
		victim, s.successor, takeover.Round(time.Millisecond), s.movedAfter(killAt), rebalanced.Round(time.Millisecond),
		doubleLeaders, doubleOwned, time.Since(start).Seconds())
	if doubleLeaders+doubleOwned > 0 {
		return fmt.Errorf("safety violated")
	}
	return nil
}

func read(r io.Reader, out chan<- event) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err == nil {
			out <- e
		}
	}
}

// state is the supervisor's view, built from the workers' events.
type state struct {
	start       time.Time
	all         []event
	ready       int
	leader      string
	leaderSince int64
	successor   string
	owner       map[int]string
	lastGain    int64
	dead        map[string]int64
}

func newState(start time.Time) *state {
	return &state{start: start, owner: map[int]string{}, dead: map[string]int64{}}
}

func (s *state) since(t time.Time) string {
	return fmt.Sprintf("+%.3fs", t.Sub(s.start).Seconds())
}

func (s *state) ownedCount() int { return len(s.owner) }

// until applies events until cond holds or d passes.
func (s *state) until(events <-chan event, d time.Duration, cond func() bool) error {
	t := time.NewTimer(d)
	defer t.Stop()
	for !cond() {
		select {
		case ev, ok := <-events:
			if !ok {
				return fmt.Errorf("workers exited early")
			}
			s.apply(ev)
		case <-t.C:
			if cond() {
				return nil
			}
			return fmt.Errorf("timed out after %v", d)
		}
	}
	return nil
}

func (s *state) apply(ev event) {
	s.all = append(s.all, ev)
	at := s.since(time.Unix(0, ev.T))
	switch ev.Kind {
	case "ready":
		s.ready++
		fmt.Printf("%8s  %s  joined the group\n", at, ev.Worker)
	case "elected":
		if len(s.dead) > 0 && s.successor == "" {
			s.successor = ev.Worker
		}
		s.leader, s.leaderSince = ev.Worker, ev.T
		fmt.Printf("%8s  %s  ELECTED leader (term token %d)\n", at, ev.Worker, ev.Token)
	case "stepdown":
		if s.leader == ev.Worker {
			s.leader = ""
		}
		fmt.Printf("%8s  %s  stepped down (%s)\n", at, ev.Worker, ev.Cause)
	case "gained":
		for _, p := range ev.Parts {
			s.owner[p] = ev.Worker
		}
		s.lastGain = ev.T
		fmt.Printf("%8s  %s  gained partitions %v\n", at, ev.Worker, ev.Parts)
	case "lost":
		for _, p := range ev.Parts {
			if s.owner[p] == ev.Worker {
				delete(s.owner, p)
			}
		}
		fmt.Printf("%8s  %s  released partitions %v\n", at, ev.Worker, ev.Parts)
	}
}

// killed records that a worker died: it leads and owns nothing any more.
func (s *state) killed(w string, at time.Time) {
	s.dead[w] = at.UnixNano()
	s.all = append(s.all, event{T: at.UnixNano(), Worker: w, Kind: "killed"})
	if s.leader == w {
		s.leader = ""
	}
	for p, o := range s.owner {
		if o == w {
			delete(s.owner, p)
		}
	}
}

func (s *state) table(title string) {
	by := map[string][]int{}
	for p, w := range s.owner {
		by[w] = append(by[w], p)
	}
	fmt.Printf("\n  -- %s: leader %s --\n", title, s.leader)
	for _, w := range []string{"w1", "w2", "w3"} {
		if s.dead[w] != 0 {
			fmt.Printf("  %s  (dead)\n", w)
			continue
		}
		ps := by[w]
		sort.Ints(ps)
		mark := "  "
		if w == s.leader {
			mark = " *"
		}
		fmt.Printf(" %s%s  %2d partitions %v\n", mark, w, len(ps), ps)
	}
}

// movedAfter counts partitions gained after t.
func (s *state) movedAfter(t time.Time) int {
	n := 0
	for _, e := range s.all {
		if e.Kind == "gained" && e.T > t.UnixNano() {
			n += len(e.Parts)
		}
	}
	return n
}

// check replays every event in timestamp order and counts violations:
// two live leaders at once, a partition owned by two live workers at once.
func (s *state) check() (doubleLeaders, doubleOwned int) {
	evs := append([]event(nil), s.all...)
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].T < evs[j].T })
	leaders := map[string]bool{}
	owners := map[int]map[string]bool{}
	for _, e := range evs {
		switch e.Kind {
		case "elected":
			if len(leaders) > 0 && !leaders[e.Worker] {
				doubleLeaders++
			}
			leaders[e.Worker] = true
		case "stepdown":
			delete(leaders, e.Worker)
		case "killed":
			delete(leaders, e.Worker)
			for _, o := range owners {
				delete(o, e.Worker)
			}
		case "gained":
			for _, p := range e.Parts {
				if owners[p] == nil {
					owners[p] = map[string]bool{}
				}
				if len(owners[p]) > 0 {
					doubleOwned++
				}
				owners[p][e.Worker] = true
			}
		case "lost":
			for _, p := range e.Parts {
				delete(owners[p], e.Worker)
			}
		}
	}
	return doubleLeaders, doubleOwned
}
