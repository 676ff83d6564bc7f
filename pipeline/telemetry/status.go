package telemetry

import (
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/adaptrec/adaptrec/model"
)

// The status page's data that /metrics cannot carry: the history of the
// model's architecture, its latest architecture decisions, and the
// replicas with the ages of their snapshots. The page reads everything
// else (events, lag, HR@10, reward, parameters) from /metrics itself.

// Bounds of the status page's histories.
const (
	// ArchHistory is the number of architecture points kept: at one
	// point per ArchEvery, an hour.
	ArchHistory = 720
	// ArchEvery is the longest time between two architecture points while
	// the model learns; a change of widths adds a point at once.
	ArchEvery = 5 * time.Second
	// DecisionHistory is the number of architecture decisions kept.
	DecisionHistory = 20
)

// Status is what the worker reports for the status page, served as JSON
// at /status.json. Its histories are ring buffers (ArchHistory,
// DecisionHistory). It is safe for concurrent use: the worker records, the
// HTTP server reads. The zero value is not usable: use NewStatus; a nil
// *Status records nothing.
type Status struct {
	mu        sync.Mutex
	info      ModelInfo
	arch      ring[ArchPoint]
	decisions ring[Decision]
	self      Replica
	peers     func(now time.Time) []Replica
}

// ModelInfo describes the model the worker serves.
type ModelInfo struct {
	// Name is the model's name (recommender.model).
	Name string `json:"name"`
	// Architecture is whether the model has a network whose layer widths
	// it reports (the DQN family); count-based models (pop, itemknn, sr,
	// sknn) have none.
	Architecture bool `json:"architecture"`
	// Snapshots is whether the model writes snapshots.
	Snapshots bool `json:"snapshots"`
}

// ArchPoint is the model's size at one time.
type ArchPoint struct {
	At time.Time `json:"at"`
	// Widths are the hidden layers' widths (none without a network).
	Widths []int `json:"widths"`
	// Params is the model's parameter count (adaptrec_model_parameters);
	// NetParams the network's part of it, the rest being the item tables
	// (embeddings and biases).
	Params    int `json:"params"`
	NetParams int `json:"net_params"`
}

// Decision is an architecture decision as the decisions topic carries
// it, with the time it was taken (or rewarded).
type Decision struct {
	At time.Time `json:"at"`
	model.Decision
}

// Replica is one replica of the group as this worker sees it: itself, or
// another whose snapshots it has read (snapshot.merge).
type Replica struct {
	Name string `json:"name"`
	// Self marks this worker.
	Self bool `json:"self"`
	// Decider is whether it decides the architecture (known for Self;
	// for the others, what their newest snapshot says).
	Decider bool `json:"decider"`
	// Live: its newest snapshot is younger than snapshot.peer_timeout and
	// is not the final one of a clean stop (always true for Self).
	Live bool `json:"live"`
	// Snapshot is the id of its newest snapshot ("" if none), written at
	// SnapshotAt, SnapshotAge seconds before the report (null if none).
	Snapshot    string     `json:"snapshot"`
	SnapshotAt  *time.Time `json:"snapshot_at"`
	SnapshotAge *float64   `json:"snapshot_age_seconds"`
}

// StatusReport is the body of /status.json.
type StatusReport struct {
	// Now is when the report was made (snapshot ages count to it).
	Now   time.Time `json:"now"`
	Model ModelInfo `json:"model"`
	// History is the architecture over time, oldest first.
	History []ArchPoint `json:"history"`
	// Decisions are the latest architecture decisions, newest first; a
	// decision whose reward is known replaces its first record.
	Decisions []Decision `json:"decisions"`
	// Replicas: this worker first, then the others by name.
	Replicas []Replica `json:"replicas"`
}

// NewStatus returns an empty status.
func NewStatus() *Status {
	return &Status{arch: newRing[ArchPoint](ArchHistory), decisions: newRing[Decision](DecisionHistory), self: Replica{Self: true, Live: true}}
}

// SetModel records the model the worker serves.
func (s *Status) SetModel(info ModelInfo) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.info = info
}

// SetSelf records this worker's replica name and whether it decides the
// architecture.
func (s *Status) SetSelf(name string, decider bool) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.self.Name, s.self.Decider = name, decider
}

// SetPeers sets what lists the other replicas at a time; it is called on
// the HTTP server's goroutine, so it must be safe for concurrent use.
func (s *Status) SetPeers(peers func(now time.Time) []Replica) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.peers = peers
}

// Snapshot records the newest snapshot this worker published: id,
// acknowledged at at.
func (s *Status) Snapshot(id string, at time.Time) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.self.Snapshot, s.self.SnapshotAt = id, &at
}

// Architecture records the model's size at a time. It keeps a point if
// the widths changed since the last one or ArchEvery has passed.
func (s *Status) Architecture(p ArchPoint) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if last, ok := s.arch.last(); ok && slices.Equal(last.Widths, p.Widths) && p.At.Sub(last.At) < ArchEvery {
		return
	}
	p.Widths = slices.Clone(p.Widths)
	s.arch.add(p)
}

// Decision records an architecture decision taken or rewarded at at; a
// rewarded one replaces the record of its epoch if that is still kept.
func (s *Status) Decision(d model.Decision, at time.Time) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := Decision{At: at, Decision: d}
	rec.Before, rec.After = slices.Clone(d.Before), slices.Clone(d.After)
	if d.Rewarded && s.decisions.replace(func(old Decision) bool { return old.Epoch == d.Epoch }, rec) {
		return
	}
	s.decisions.add(rec)
}

// Report returns the status at now.
func (s *Status) Report(now time.Time) StatusReport {
	s.mu.Lock()
	r := StatusReport{Now: now, Model: s.info, History: s.arch.items(), Decisions: s.decisions.items(), Replicas: []Replica{s.self}}
	peers := s.peers
	s.mu.Unlock()
	slices.Reverse(r.Decisions)
	if peers != nil {
		r.Replicas = append(r.Replicas, peers(now)...)
	}
	for i := range r.Replicas {
		if at := r.Replicas[i].SnapshotAt; at != nil {
			age := now.Sub(*at).Seconds()
			r.Replicas[i].SnapshotAge = &age
		}
	}
	return r
}

// ServeHTTP serves the report at the time of the request as JSON.
func (s *Status) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err := json.NewEncoder(w).Encode(s.Report(time.Now())); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

// ring keeps the last len(buf) values added.
type ring[T any] struct {
	buf     []T
	next, n int
}

func newRing[T any](size int) ring[T] { return ring[T]{buf: make([]T, size)} }

func (r *ring[T]) add(v T) {
	r.buf[r.next] = v
	r.next = (r.next + 1) % len(r.buf)
	r.n = min(r.n+1, len(r.buf))
}

// last is the value added last.
func (r *ring[T]) last() (T, bool) {
	if r.n == 0 {
		var zero T
		return zero, false
	}
	return r.buf[(r.next-1+len(r.buf))%len(r.buf)], true
}

// replace puts v in place of the newest value that match accepts, and
// reports whether there was one.
func (r *ring[T]) replace(match func(T) bool, v T) bool {
	for k := 1; k <= r.n; k++ {
		i := (r.next - k + len(r.buf)) % len(r.buf)
		if match(r.buf[i]) {
			r.buf[i] = v
			return true
		}
	}
	return false
}

// items are the values kept, oldest first.
func (r *ring[T]) items() []T {
	out := make([]T, 0, r.n)
	for k := r.n; k > 0; k-- {
		out = append(out, r.buf[(r.next-k+len(r.buf))%len(r.buf)])
	}
	return out
}
