package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// ErrTopicGone reports that a topic the worker reads or writes was deleted
// (or deleted and re-created) while it ran. The worker stops with it so
// that its supervisor restarts it: a new worker creates missing topics
// (topics.create) and starts on a re-created feedback topic from its
// beginning, as Kafka drops a deleted topic's committed offsets.
var ErrTopicGone = errors.New("topic deleted while the worker ran")

// logRepeatInterval is how often a repeated identical warning is written.
const logRepeatInterval = 10 * time.Second

// HealthReport is the outcome of one health check of a running worker.
type HealthReport struct {
	Broker  error    // nil when a broker answered a metadata request
	Missing []string // the worker's topics that do not exist
	Held    []int    // feedback partitions the worker holds
	Lag     int64    // messages of those partitions not committed yet (-1: unknown)
	Stalled error    // non-nil when no progress was made for worker.stall_timeout
}

// healthState is what the health checks keep between rounds; the kafka-go
// log lines and the checks update it from several goroutines.
type healthState struct {
	mu     sync.Mutex
	admin  *kafka.Client
	topics []TopicSpec // what Run ensured
	held   []int       // partitions of the current generation (nil: none)
	// progress: the commit count last seen while holding partitions with
	// lag, and since when it has not moved
	commits int64
	since   time.Time
	now     func() time.Time
}

// SetClock replaces the clock of the stall rule (tests). Call it before Run.
func (w *Worker) SetClock(now func() time.Time) { w.hs.now = now }

func (w *Worker) clock() time.Time {
	if w.hs.now != nil {
		return w.hs.now()
	}
	return time.Now()
}

// startHealth records what the health checks watch and reports the model
// loaded (Run calls it once restore is done, before it joins the group).
func (w *Worker) startHealth(admin *kafka.Client, topics []TopicSpec) {
	w.hs.mu.Lock()
	w.hs.admin, w.hs.topics = admin, topics
	w.hs.mu.Unlock()
	if w.health != nil {
		w.health.SetModelLoaded(w.rec != nil)
	}
}

// watch checks the worker's health every worker.health_interval until ctx
// ends. It returns an error wrapping ErrTopicGone when a topic of the
// worker was deleted, or when the reader finds its position past the end
// of a feedback partition (the topic was re-created or truncated): the
// reader would wait there for ever, so the worker stops.
func (w *Worker) watch(ctx context.Context) error {
	t := time.NewTicker(w.cfg.Worker.HealthInterval)
	defer t.Stop()
	for {
		if _, err := w.CheckHealth(ctx); err != nil && ctx.Err() == nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-w.gone:
			return err
		case <-t.C:
		}
	}
}

// CheckHealth checks once that a broker answers and the worker's topics
// exist, measures the lag of the partitions it holds, applies the stall
// rule and records the results in the worker's telemetry.Health (if any).
// The error is non-nil (wrapping ErrTopicGone) when a topic is missing.
func (w *Worker) CheckHealth(ctx context.Context) (HealthReport, error) {
	w.hs.mu.Lock()
	admin, topics := w.hs.admin, w.hs.topics
	r := HealthReport{Held: slices.Clone(w.hs.held), Lag: -1}
	w.hs.mu.Unlock()
	if admin == nil {
		return r, nil // Run has not started
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Kafka.RequestTimeout)
	defer cancel()
	names := make([]string, len(topics))
	for i, t := range topics {
		names[i] = t.Name
	}
	r.Missing, r.Broker = w.missingTopics(ctx, names)
	var gone error
	if len(r.Missing) > 0 {
		keys := make([]string, len(r.Missing))
		for i, n := range r.Missing {
			keys[i] = fmt.Sprintf("%q (%s)", n, w.topicKey(n))
		}
		verb, it := "exists", "it"
		if len(keys) > 1 {
			verb, it = "exist", "them"
		}
		gone = fmt.Errorf("%w: %s no longer %s; a restarted worker creates %s (topics.create) or reports %s missing",
			ErrTopicGone, strings.Join(keys, ", "), verb, it, it)
	}
	if r.Broker == nil && len(r.Held) > 0 {
		r.Lag = w.heldLag(ctx, admin, r.Held)
	}
	r.Stalled = w.stallRule(r)
	if w.health != nil {
		w.health.SetBroker(r.Broker)
		w.health.SetTopics(gone)
		w.health.SetStalled(r.Stalled)
	}
	return r, gone
}

// stallRule reports a stall when the worker has held partitions with lag
// and committed nothing for worker.stall_timeout. Without partitions, lag
// or a lag measurement there is nothing to make progress on.
func (w *Worker) stallRule(r HealthReport) error {
	now := w.clock()
	commits := w.stats.Commits.Load()
	w.hs.mu.Lock()
	defer w.hs.mu.Unlock()
	if len(r.Held) == 0 || r.Lag <= 0 {
		w.hs.since = time.Time{}
		return nil
	}
	if w.hs.since.IsZero() || commits != w.hs.commits {
		w.hs.since, w.hs.commits = now, commits
		return nil
	}
	if d := now.Sub(w.hs.since); d >= w.cfg.Worker.StallTimeout {
		return fmt.Errorf("no offsets committed for %v while holding partitions %v of %s with %d messages of lag (worker.stall_timeout %v)",
			d.Round(time.Second), r.Held, w.cfg.Topics.Feedback, r.Lag, w.cfg.Worker.StallTimeout)
	}
	return nil
}

// missingTopics asks the brokers, on a connection of its own (a client's
// cached metadata would hide a broker that went away), which of topics do
// not exist. The error is non-nil when no broker answered.
func (w *Worker) missingTopics(ctx context.Context, topics []string) ([]string, error) {
	dialer := w.conn.Dialer() // with the clients' TLS and SASL
	var last error
	for _, b := range w.cfg.Kafka.Brokers {
		conn, err := dialer.DialContext(ctx, "tcp", b)
		if err != nil {
			last = err
			continue
		}
		if dl, ok := ctx.Deadline(); ok {
			_ = conn.SetDeadline(dl)
		}
		missing, err := readMissing(conn, topics)
		conn.Close()
		if err != nil {
			last = fmt.Errorf("metadata request to %s: %w", b, err)
			continue
		}
		return missing, nil
	}
	return nil, fmt.Errorf("no broker of %v answered a metadata request: %w", w.cfg.Kafka.Brokers, last)
}

// readMissing returns which of topics the broker behind conn does not know.
func readMissing(conn *kafka.Conn, topics []string) ([]string, error) {
	_, err := conn.ReadPartitions(topics...)
	if !errors.Is(err, kafka.UnknownTopicOrPartition) {
		return nil, err
	}
	var missing []string
	for _, t := range topics {
		if _, err := conn.ReadPartitions(t); errors.Is(err, kafka.UnknownTopicOrPartition) {
			missing = append(missing, t)
		} else if err != nil {
			return nil, err
		}
	}
	return missing, nil
}

// heldLag is the number of messages of the held partitions past the
// group's committed offsets, or -1 if it could not be measured.
func (w *Worker) heldLag(ctx context.Context, admin *kafka.Client, held []int) int64 {
	ends, err := EndOffsets(ctx, admin, w.cfg.Topics.Feedback)
	if err != nil {
		return -1
	}
	committed, err := CommittedOffsets(ctx, admin, w.cfg.Kafka.Group, w.cfg.Topics.Feedback)
	if err != nil {
		return -1
	}
	var lag int64
	for _, p := range held {
		c := committed[p]
		if c < 0 { // nothing committed: the reader starts at kafka.start_offset
			if w.cfg.Kafka.StartOffset == "latest" {
				continue
			}
			c = 0
		}
		lag += max(0, ends[p]-c)
	}
	return lag
}

// topicKey names the config key of one of the worker's topics.
func (w *Worker) topicKey(name string) string {
	c := w.cfg
	for key, n := range map[string]string{
		"topics.feedback": c.Topics.Feedback, "topics.recommendations": c.Topics.Recommendations,
		"topics.dlq": c.Topics.DLQ, "topics.decisions": c.Topics.Decisions,
		"snapshot.topic": c.Snapshot.Topic, "snapshot.order_topic": c.Snapshot.OrderTopic,
	} {
		if n == name {
			return key
		}
	}
	return "topic"
}

// groupLine follows kafka-go's (v0.4.51) consumer group log lines: the
// reader has no membership or assignment callback. A generation's
// partitions are known once the reader subscribes to them; any failure to
// join, sync or reach the coordinator, and the end of a generation, leave
// the worker without partitions.
func (w *Worker) groupLine(format string, a []any) {
	switch {
	case strings.HasPrefix(format, "subscribed to topics and partitions"):
		held := []int{}
		if len(a) == 1 {
			for p := range subscribedPartitions(w.cfg.Topics.Feedback, a[0]) {
				held = append(held, p)
			}
			slices.Sort(held)
		}
		w.setHeld(held, true)
	case strings.HasPrefix(format, "Joined group "):
		if w.health != nil {
			w.health.SetJoined(true)
		}
	case strings.HasPrefix(format, "Leaving group "), strings.HasPrefix(format, "Failed to join group "),
		strings.HasPrefix(format, "Failed to sync group "), strings.HasPrefix(format, "Failed to fetch offsets "),
		strings.HasPrefix(format, "Unable to establish connection to consumer group coordinator"),
		strings.HasPrefix(format, "stopped heartbeat for group"):
		w.setHeld(nil, false)
	}
}

func (w *Worker) setHeld(held []int, joined bool) {
	w.hs.mu.Lock()
	w.hs.held = held
	w.hs.mu.Unlock()
	if w.health != nil {
		w.health.SetJoined(joined)
	}
}

// readerLine watches kafka-go's error lines for a reader whose position is
// past the end of its partition: kafka-go waits there for ever ("hoping
// that enough data has been produced"), which after a deleted and
// re-created topic means consuming nothing while holding partitions.
func (w *Worker) readerLine(format string, a []any) {
	past := strings.HasPrefix(format, "the kafka reader is reading passed the last offset")
	if strings.HasPrefix(format, "error initializing the kafka reader for partition") && len(a) >= 3 {
		err, _ := a[2].(error)
		past = errors.Is(err, kafka.OffsetOutOfRange)
	}
	if !past || len(a) < 2 || w.closing.Load() {
		return
	}
	err := fmt.Errorf("%w: the reader's position in partition %v of %v (topics.feedback) is past the partition's end, so the topic was deleted and re-created (or truncated); a restarted worker reads it from its committed offsets",
		ErrTopicGone, a[0], a[1])
	select {
	case w.gone <- err:
	default: // one is enough
	}
}

// logLimited writes a log line unless one of the same key was written
// within logRepeatInterval; the next one written says how many were held
// back.
func (w *Worker) logLimited(key string, level slog.Level, msg string, attrs ...any) {
	ok, n, over := w.logLimit.Allow(level.String() + key)
	if !ok {
		return
	}
	switch {
	case n == 1:
		msg = fmt.Sprintf("%s (repeated once in the last %v)", msg, over.Round(time.Second))
	case n > 1:
		msg = fmt.Sprintf("%s (repeated %d times in the last %v)", msg, n, over.Round(time.Second))
	}
	w.log.Log(context.Background(), level, msg, attrs...)
}
