package pipeline

import (
	"cmp"
	"slices"
	"time"

	"github.com/adaptrec/adaptrec/pipeline/telemetry"
)

// The worker's side of the status page (telemetry.Status): the model's
// architecture after each batch, its decisions, this replica and its
// snapshots, the other replicas' snapshots. The model goroutine records
// what it owns; the HTTP server reads the Peers through their lock.

// architecture is a model with a network whose size it reports (the DQN
// family).
type architecture interface {
	Widths() []int
	NetParams() int
}

// ShowStatus makes the worker report to s (the status page's
// /status.json). Call it before Run.
func (w *Worker) ShowStatus(s *telemetry.Status) {
	w.status = s
	_, arch := w.rec.(architecture)
	s.SetModel(telemetry.ModelInfo{Name: w.rec.Name(), Architecture: arch, Snapshots: w.caps.snapshotter != nil})
}

// statusArchitecture records the model's size after a batch (model
// goroutine).
func (w *Worker) statusArchitecture(at time.Time) {
	if w.status == nil {
		return
	}
	p := telemetry.ArchPoint{At: at, Params: w.rec.Params()}
	if a, ok := w.rec.(architecture); ok {
		p.Widths, p.NetParams = a.Widths(), a.NetParams()
	}
	w.status.Architecture(p)
}

// statusSelf records this replica's name and role, and the other
// replicas' snapshots as the peers follower holds them (prepare, once the
// replica is named).
func (w *Worker) statusSelf() {
	if w.status == nil {
		return
	}
	w.status.SetSelf(w.replica, w.decider)
	if w.peers != nil {
		ttl := w.cfg.Snapshot.PeerTimeout
		w.status.SetPeers(func(now time.Time) []telemetry.Replica { return w.peers.replicas(now, ttl) })
	}
}

// replicas lists the other replicas whose newest snapshot p holds, by
// name, for the status page.
func (p *Peers) replicas(now time.Time, ttl time.Duration) []telemetry.Replica {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]telemetry.Replica, 0, len(p.newest))
	for name, pe := range p.newest {
		created := pe.snap.Meta.Created
		out = append(out, telemetry.Replica{Name: name, Decider: pe.snap.Meta.Decider, Live: pe.live(now, ttl),
			Snapshot: pe.id, SnapshotAt: &created})
	}
	slices.SortFunc(out, func(a, b telemetry.Replica) int { return cmp.Compare(a.Name, b.Name) })
	return out
}
