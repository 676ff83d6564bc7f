package configs

import (
	"strings"
	"time"
)

// Sink configures the Kafka writers of every output topic.
type Sink struct {
	BatchTimeout time.Duration `mapstructure:"batch_timeout"`
	BatchSize    int           `mapstructure:"batch_size"`
	WriteTimeout time.Duration `mapstructure:"write_timeout"`
	MaxAttempts  int           `mapstructure:"max_attempts"`
}

// Worker configures the run loop around the stages.
type Worker struct {
	ShutdownTimeout   time.Duration `mapstructure:"shutdown_timeout"`
	MaxPendingBatches int           `mapstructure:"max_pending_batches"`
	ProgressInterval  time.Duration `mapstructure:"progress_interval"`
	HealthInterval    time.Duration `mapstructure:"health_interval"`
	StallTimeout      time.Duration `mapstructure:"stall_timeout"`
}

// Snapshot configures model snapshots on Kafka.
type Snapshot struct {
	Topic        string        `mapstructure:"topic"`
	Interval     time.Duration `mapstructure:"interval"`
	EveryBatches int           `mapstructure:"every_batches"`
	OnShutdown   bool          `mapstructure:"on_shutdown"`
	Keep         int           `mapstructure:"keep"`
	Restore      bool          `mapstructure:"restore"`
	// RestoreTimeout bounds how long a worker that cannot read the
	// snapshot topic (or, later, the feedback it rebuilds sessions from)
	// retries before it exits with an error, instead of serving a model
	// that starts from nothing.
	RestoreTimeout time.Duration `mapstructure:"restore_timeout"`
	// Replica names this worker among the group's replicas ("": host-pid).
	Replica string `mapstructure:"replica"`
	// Merge merges the other replicas' newest snapshots into the model
	// before each snapshot (README: Replicas); PeerTimeout is how old a replica's newest
	// snapshot may be for it to count as live.
	Merge       bool          `mapstructure:"merge"`
	PeerTimeout time.Duration `mapstructure:"peer_timeout"`
	// Idle: after this long without events, the worker publishes what it
	// learned since its last snapshot and merges new snapshots of the
	// other replicas (0: off).
	Idle time.Duration `mapstructure:"idle"`
	// OrderTopic records the order in which the worker learned the
	// events, for bit-for-bit replay from a snapshot ("": off).
	OrderTopic string `mapstructure:"order_topic"`
	ChunkBytes int    `mapstructure:"chunk_bytes"`
}

// Bounds of snapshot.chunk_bytes: a chunk and its record overhead must fit
// in a message of Kafka's default 1 MB max.message.bytes.
const (
	MinSnapshotChunkBytes = 1 << 10
	MaxSnapshotChunkBytes = 900 << 10
)

// check validates sink.*.
func (s Sink) check(p *problems) {
	positive(p, map[string]time.Duration{"sink.batch_timeout": s.BatchTimeout, "sink.write_timeout": s.WriteTimeout})
	positive(p, map[string]int{"sink.batch_size": s.BatchSize, "sink.max_attempts": s.MaxAttempts})
}

// check validates worker.*.
func (w Worker) check(p *problems) {
	positive(p, map[string]time.Duration{
		"worker.shutdown_timeout": w.ShutdownTimeout,
		"worker.health_interval":  w.HealthInterval, "worker.stall_timeout": w.StallTimeout,
	})
	if w.StallTimeout > 0 && w.HealthInterval >= w.StallTimeout {
		p.add("worker.stall_timeout", "must be longer than worker.health_interval (%v), got %v", w.HealthInterval, w.StallTimeout)
	}
	if w.ProgressInterval < 0 {
		p.add("worker.progress_interval", "must not be negative")
	}
	positive(p, map[string]int{"worker.max_pending_batches": w.MaxPendingBatches})
}

// check validates snapshot.*; feedback is topics.feedback, which the
// order topic must differ from.
func (s Snapshot) check(p *problems, feedback string) {
	if s.Topic == "" || !validTopic(s.Topic) {
		p.add("snapshot.topic", "%q is not a valid Kafka topic name", s.Topic)
	}
	if s.Keep <= 0 {
		p.add("snapshot.keep", "must be positive, got %d", s.Keep)
	}
	if t := s.OrderTopic; t != "" && (!validTopic(t) || t == s.Topic || t == feedback) {
		p.add("snapshot.order_topic", "%q is not a valid Kafka topic name of its own", t)
	}
	if s.Idle < 0 {
		p.add("snapshot.idle", "must not be negative, got %v", s.Idle)
	}
	positive(p, map[string]time.Duration{"snapshot.restore_timeout": s.RestoreTimeout, "snapshot.peer_timeout": s.PeerTimeout})
	if strings.ContainsAny(s.Replica, "/ ") {
		p.add("snapshot.replica", "must not contain '/' or spaces, got %q", s.Replica)
	}
	if n := s.ChunkBytes; n < MinSnapshotChunkBytes || n > MaxSnapshotChunkBytes {
		p.add("snapshot.chunk_bytes", "must be within %d..%d, got %d", MinSnapshotChunkBytes, MaxSnapshotChunkBytes, n)
	}
	if s.Interval < 0 || s.EveryBatches < 0 {
		p.add("snapshot.interval", "snapshot.interval and snapshot.every_batches must not be negative")
	}
}
