package feedback

import (
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/memory"
)

// Column positions in Schema.
const (
	ColEventID = iota
	ColUserID
	ColSessionID
	ColItemID
	ColType
	ColValue
	ColTS
	ColRecID
	ColPosition
	ColPartition
	ColOffset
	ColKafkaTime
)

// Schema is the Arrow schema of one batch of feedback events, in the order the
// worker consumed them. type holds Type values (1 click, 2 view, 3 rating);
// partition and offset say where each event was read, kafka_time is the
// message timestamp (when it was produced).
var Schema = arrow.NewSchema([]arrow.Field{
	{Name: "event_id", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "user_id", Type: arrow.BinaryTypes.String},
	{Name: "session_id", Type: arrow.BinaryTypes.String},
	{Name: "item_id", Type: arrow.BinaryTypes.String},
	{Name: "type", Type: arrow.PrimitiveTypes.Uint8},
	{Name: "value", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
	{Name: "rec_id", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "position", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
	{Name: "partition", Type: arrow.PrimitiveTypes.Int32},
	{Name: "offset", Type: arrow.PrimitiveTypes.Int64},
	{Name: "kafka_time", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
}, &schemaMeta)

var schemaMeta = arrow.NewMetadata([]string{"adaptrec.schema"}, []string{"feedback/v1"})

// Located is an event with the place it was read from.
type Located struct {
	Event
	Partition int32
	Offset    int64
	KafkaTime time.Time
}

// Builder accumulates events into Arrow records. It is not safe for
// concurrent use; reuse one per pipeline.
type Builder struct {
	b *array.RecordBuilder
}

// NewBuilder returns a Builder allocating from mem (nil: the Go allocator).
func NewBuilder(mem memory.Allocator) *Builder {
	if mem == nil {
		mem = memory.NewGoAllocator()
	}
	return &Builder{b: array.NewRecordBuilder(mem, Schema)}
}

// Append adds one event to the record under construction.
func (b *Builder) Append(e Located) {
	f := b.b.Fields()
	appendOptString(f[ColEventID].(*array.StringBuilder), e.EventID)
	f[ColUserID].(*array.StringBuilder).Append(e.UserID)
	f[ColSessionID].(*array.StringBuilder).Append(e.SessionID)
	f[ColItemID].(*array.StringBuilder).Append(e.ItemID)
	f[ColType].(*array.Uint8Builder).Append(uint8(e.Type))
	if e.HasValue {
		f[ColValue].(*array.Float64Builder).Append(e.Value)
	} else {
		f[ColValue].(*array.Float64Builder).AppendNull()
	}
	f[ColTS].(*array.TimestampBuilder).Append(arrow.Timestamp(e.TS.UnixMicro()))
	appendOptString(f[ColRecID].(*array.StringBuilder), e.RecID)
	if e.HasPos {
		f[ColPosition].(*array.Int32Builder).Append(e.Position)
	} else {
		f[ColPosition].(*array.Int32Builder).AppendNull()
	}
	f[ColPartition].(*array.Int32Builder).Append(e.Partition)
	f[ColOffset].(*array.Int64Builder).Append(e.Offset)
	f[ColKafkaTime].(*array.TimestampBuilder).Append(arrow.Timestamp(e.KafkaTime.UnixMicro()))
}

func appendOptString(b *array.StringBuilder, s string) {
	if s == "" {
		b.AppendNull()
		return
	}
	b.Append(s)
}

// NewBatch returns the events appended since the last call as a Batch and
// resets the builder. The caller owns the batch and must Release it.
func (b *Builder) NewBatch() *Batch {
	return NewBatch(b.b.NewRecord())
}

// Release frees the builder's buffers.
func (b *Builder) Release() { b.b.Release() }

// Batch gives typed, allocation-free access to a feedback record. Strings it
// returns alias the record's buffers: copy them (strings.Clone) before
// keeping them beyond the batch.
type Batch struct {
	Record    arrow.Record
	eventID   *array.String
	userID    *array.String
	sessionID *array.String
	itemID    *array.String
	typ       *array.Uint8
	value     *array.Float64
	ts        *array.Timestamp
	recID     *array.String
	position  *array.Int32
	partition *array.Int32
	offset    *array.Int64
	kafkaTime *array.Timestamp
}

// NewBatch wraps a record of Schema. It panics if the schema differs, which
// is a programming error, not a data error.
func NewBatch(rec arrow.Record) *Batch {
	if !rec.Schema().Equal(Schema) {
		panic("feedback: record does not have feedback.Schema")
	}
	return &Batch{
		Record:    rec,
		eventID:   rec.Column(ColEventID).(*array.String),
		userID:    rec.Column(ColUserID).(*array.String),
		sessionID: rec.Column(ColSessionID).(*array.String),
		itemID:    rec.Column(ColItemID).(*array.String),
		typ:       rec.Column(ColType).(*array.Uint8),
		value:     rec.Column(ColValue).(*array.Float64),
		ts:        rec.Column(ColTS).(*array.Timestamp),
		recID:     rec.Column(ColRecID).(*array.String),
		position:  rec.Column(ColPosition).(*array.Int32),
		partition: rec.Column(ColPartition).(*array.Int32),
		offset:    rec.Column(ColOffset).(*array.Int64),
		kafkaTime: rec.Column(ColKafkaTime).(*array.Timestamp),
	}
}

// Len is the number of events.
func (b *Batch) Len() int { return int(b.Record.NumRows()) }

// Release releases the record.
func (b *Batch) Release() { b.Record.Release() }

// EventID of event i ("" if absent).
func (b *Batch) EventID(i int) string { return b.eventID.Value(i) }

// UserID of event i.
func (b *Batch) UserID(i int) string { return b.userID.Value(i) }

// SessionID of event i (given or derived by the pipeline).
func (b *Batch) SessionID(i int) string { return b.sessionID.Value(i) }

// ItemID of event i.
func (b *Batch) ItemID(i int) string { return b.itemID.Value(i) }

// Type of event i.
func (b *Batch) Type(i int) Type { return Type(b.typ.Value(i)) }

// Value of event i and whether it has one.
func (b *Batch) Value(i int) (float64, bool) {
	if b.value.IsNull(i) {
		return 0, false
	}
	return b.value.Value(i), true
}

// TS is the event time of event i.
func (b *Batch) TS(i int) time.Time { return time.UnixMicro(int64(b.ts.Value(i))).UTC() }

// TSMicros is the event time of event i in Unix microseconds.
func (b *Batch) TSMicros(i int) int64 { return int64(b.ts.Value(i)) }

// RecID of event i ("" if absent).
func (b *Batch) RecID(i int) string { return b.recID.Value(i) }

// Position of event i and whether it has one.
func (b *Batch) Position(i int) (int32, bool) {
	if b.position.IsNull(i) {
		return 0, false
	}
	return b.position.Value(i), true
}

// Partition event i was read from.
func (b *Batch) Partition(i int) int32 { return b.partition.Value(i) }

// Offset event i was read at.
func (b *Batch) Offset(i int) int64 { return b.offset.Value(i) }

// KafkaTime is the message timestamp of event i.
func (b *Batch) KafkaTime(i int) time.Time {
	return time.UnixMicro(int64(b.kafkaTime.Value(i))).UTC()
}

// Event reconstructs event i.
func (b *Batch) Event(i int) Located {
	v, hasV := b.Value(i)
	p, hasP := b.Position(i)
	return Located{
		Event: Event{
			EventID: b.EventID(i), UserID: b.UserID(i), SessionID: b.SessionID(i), ItemID: b.ItemID(i),
			Type: b.Type(i), Value: v, HasValue: hasV, TS: b.TS(i), RecID: b.RecID(i), Position: p, HasPos: hasP,
		},
		Partition: b.Partition(i), Offset: b.Offset(i), KafkaTime: b.KafkaTime(i),
	}
}

// BatchOf builds a Batch from events; for tests and tools. The caller must
// Release it.
func BatchOf(events ...Located) *Batch {
	b := NewBuilder(nil)
	defer b.Release()
	for _, e := range events {
		b.Append(e)
	}
	return b.NewBatch()
}
