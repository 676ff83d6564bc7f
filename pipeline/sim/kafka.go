package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/trace"

	"github.com/adaptrec/adaptrec/model"
	"github.com/adaptrec/adaptrec/model/feedback"
	"github.com/adaptrec/adaptrec/pipeline"
	"github.com/adaptrec/adaptrec/pipeline/kafkaconn"
	"github.com/adaptrec/adaptrec/pipeline/telemetry"
	"github.com/adaptrec/adaptrec/sink"
)

// KafkaPolicy is a live worker seen through Kafka: a tick's events are
// produced to the feedback topic (keyed by user, with trace context when
// Tracer is set), and the lists are read back from the recommendations
// topic. Each user with an event gets the first list published for them
// after it was produced, waiting at most Wait; a user whose list does not
// come in time keeps seeing the previous one.
type KafkaPolicy struct {
	Out    sink.Sink
	Topic  string // feedback topic, for spans
	Tracer trace.Tracer
	Wait   time.Duration
	Log    *slog.Logger
	// Malformed is the fraction of extra malformed messages sent with the
	// events, to show the worker's dead-letter queue at work.
	Malformed float64
	rng       *rand.Rand

	mu      sync.Mutex
	cond    *sync.Cond
	latest  map[string]list // by user
	readErr error
	stop    context.CancelFunc
	done    chan struct{}
}

type list struct {
	items []string
	seq   int64 // arrival order
}

// NewKafkaPolicy starts reading every partition of the recommendations
// topic from its current end. Close stops it.
func NewKafkaPolicy(ctx context.Context, conn *kafkaconn.Conn, recTopic string, p *KafkaPolicy) (*KafkaPolicy, error) {
	client := conn.Client()
	ends, err := pipeline.EndOffsets(ctx, client, recTopic)
	if err != nil {
		return nil, err
	}
	if len(ends) == 0 {
		return nil, fmt.Errorf("topic %q has no partitions", recTopic)
	}
	if p.Wait <= 0 {
		p.Wait = 5 * time.Second
	}
	if p.Log == nil {
		p.Log = slog.New(slog.DiscardHandler)
	}
	p.cond = sync.NewCond(&p.mu)
	p.latest = map[string]list{}
	rctx, stop := context.WithCancel(ctx)
	p.stop, p.done = stop, make(chan struct{})
	var wg sync.WaitGroup
	var seq int64
	for part, end := range ends {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: conn.Brokers(), Dialer: conn.Dialer(), Topic: recTopic, Partition: part,
			MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 2 * time.Second})
		if err := r.SetOffset(end); err != nil {
			stop()
			return nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.Close()
			for {
				m, err := r.ReadMessage(rctx)
				if err != nil {
					if rctx.Err() == nil && !errors.Is(err, context.Canceled) {
						p.mu.Lock()
						p.readErr = fmt.Errorf("reading %s/%d: %w", recTopic, part, err)
						p.cond.Broadcast()
						p.mu.Unlock()
					}
					return
				}
				var rec model.Recommendation
				if err := json.Unmarshal(m.Value, &rec); err != nil {
					p.Log.Warn("simulate: unreadable recommendation", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "err", err)
					continue
				}
				ids := make([]string, len(rec.Items))
				for i, it := range rec.Items {
					ids[i] = it.ItemID
				}
				p.mu.Lock()
				seq++
				p.latest[rec.UserID] = list{items: ids, seq: seq}
				p.cond.Broadcast()
				p.mu.Unlock()
			}
		}()
	}
	go func() { wg.Wait(); close(p.done) }()
	return p, nil
}

// Name implements Policy.
func (p *KafkaPolicy) Name() string { return "worker" }

// Lists implements Policy.
func (p *KafkaPolicy) Lists(ctx context.Context, events []feedback.Event) (Lists, error) {
	if len(events) == 0 {
		return nil, nil
	}
	p.mu.Lock()
	mark := map[string]int64{}
	for _, e := range events {
		mark[e.UserID] = p.latest[e.UserID].seq
	}
	p.mu.Unlock()
	msgs := make([]kafka.Message, len(events))
	var spans []trace.Span
	for i, e := range events {
		msgs[i] = kafka.Message{Key: []byte(e.UserID), Value: feedback.Encode(e), Time: time.Now()}
		if p.Tracer != nil {
			sctx, span := p.Tracer.Start(ctx, "send "+p.Topic, trace.WithSpanKind(trace.SpanKindProducer),
				trace.WithAttributes(telemetry.Messaging(p.Topic)...))
			telemetry.Inject(sctx, &msgs[i])
			spans = append(spans, span)
		}
	}
	if p.Malformed > 0 {
		if p.rng == nil {
			p.rng = rand.New(rand.NewPCG(1, 0xbad))
		}
		for _, e := range events {
			if p.rng.Float64() < p.Malformed {
				msgs = append(msgs, kafka.Message{Key: []byte(e.UserID), Value: []byte(`{"user_id":"` + e.UserID + `","type":"purchase"}`), Time: time.Now()})
			}
		}
	}
	err := p.Out.Publish(ctx, msgs...)
	for _, s := range spans {
		s.End()
	}
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(p.Wait)
	timer := time.AfterFunc(p.Wait, func() { p.mu.Lock(); p.cond.Broadcast(); p.mu.Unlock() })
	defer timer.Stop()
	stop := context.AfterFunc(ctx, func() { p.mu.Lock(); p.cond.Broadcast(); p.mu.Unlock() })
	defer stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	out := Lists{}
	for {
		for u, seen := range mark {
			if l := p.latest[u]; l.seq > seen {
				out[u] = l.items
				delete(mark, u)
			}
		}
		if len(mark) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return out, ctx.Err()
		}
		if p.readErr != nil {
			return out, p.readErr
		}
		p.cond.Wait()
	}
}

// Close stops the readers.
func (p *KafkaPolicy) Close() {
	p.stop()
	<-p.done
}
