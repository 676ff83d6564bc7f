package model

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/apache/arrow/go/v15/arrow/ipc"
	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/adaptrec/adaptrec/model/feedback"
)

// SnapshotFormat is the version of the snapshot layout this build writes
// and reads.
const SnapshotFormat = 3

// SnapshotMeta is what a snapshot says about itself; it travels as the
// Arrow schema's metadata.
type SnapshotMeta struct {
	Format  int    `json:"format"`
	Version string `json:"adaptrec_version"`
	Model   string `json:"model"`
	// Architecture: input and embedding width, hidden widths.
	In     int   `json:"in"`
	Dim    int   `json:"dim"`
	Widths []int `json:"widths"`
	// TierAt are the item tiers' thresholds, which the architecture
	// controller scales (absent without tiers).
	TierAt []float64 `json:"tier_at,omitempty"`
	// Items is the vocabulary size; Steps and Batches the training
	// counters; AdamT the optimiser's step count.
	Items   int   `json:"items"`
	Steps   int64 `json:"steps"`
	Batches int64 `json:"batches"`
	AdamT   int   `json:"adam_t"`
	// ReplayNext is the replay buffer's next slot once it is full.
	ReplayNext int `json:"replay_next"`
	// Offsets are the feedback offsets the model has consumed, by partition
	// (the next offset to read), as the worker records them.
	Offsets map[int32]int64 `json:"offsets,omitempty"`
	Seed    uint64          `json:"seed"`
	Created time.Time       `json:"created"`
	// Replica names the worker that wrote the snapshot (snapshot.replica);
	// Decider is set when it was the group's architecture decider, Final
	// when it is the last snapshot of a worker leaving the group.
	Replica string `json:"replica,omitempty"`
	Decider bool   `json:"decider,omitempty"`
	Final   bool   `json:"final,omitempty"`
	// Replicas is how many replicas were live, the writer included.
	Replicas int `json:"replicas,omitempty"`
	// Dedupe is the worker's set of recently learned event keys, oldest
	// first, which the model carries without reading it: it travels as the
	// row pipeline.dedupe (absent when empty, and in snapshots written
	// before it existed), so a restarted worker still knows them.
	Dedupe []uint64 `json:"-"`
	// Checksum is the SHA-256 of the metadata (without it) and the content
	// (every row, in order).
	Checksum string `json:"checksum"`
}

// snapshotSchema: one row per tensor (float32 values with a shape) or per
// list of strings (the vocabulary) or of integers (co-occurrence indices).
func snapshotSchema(meta SnapshotMeta) (*arrow.Schema, error) {
	raw, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	md := arrow.NewMetadata([]string{"adaptrec.snapshot"}, []string{string(raw)})
	return arrow.NewSchema([]arrow.Field{
		{Name: "name", Type: arrow.BinaryTypes.String},
		{Name: "shape", Type: arrow.ListOf(arrow.PrimitiveTypes.Int64)},
		{Name: "f32", Type: arrow.ListOf(arrow.PrimitiveTypes.Float32)},
		{Name: "i32", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32)},
		{Name: "str", Type: arrow.ListOf(arrow.BinaryTypes.String)},
		{Name: "i64", Type: arrow.ListOf(arrow.PrimitiveTypes.Int64)},
	}, &md), nil
}

// row is one named tensor or list of a snapshot.
type row struct {
	name  string
	shape []int64
	f32   []float32
	i32   []int32
	str   []string
	i64   []int64
}

// digest is the checksum over the metadata (its Checksum field empty) and
// the rows, in order.
func digest(meta SnapshotMeta, rows []row) string {
	h := sha256.New()
	meta.Checksum = ""
	raw, _ := json.Marshal(meta) // a struct of plain fields: cannot fail
	h.Write(raw)
	var b [8]byte
	for _, r := range rows {
		h.Write([]byte(r.name))
		h.Write([]byte{0})
		for _, s := range r.shape {
			binary.LittleEndian.PutUint64(b[:], uint64(s))
			h.Write(b[:])
		}
		for _, v := range r.f32 {
			binary.LittleEndian.PutUint32(b[:4], math.Float32bits(v))
			h.Write(b[:4])
		}
		for _, v := range r.i32 {
			binary.LittleEndian.PutUint32(b[:4], uint32(v))
			h.Write(b[:4])
		}
		for _, s := range r.str {
			h.Write([]byte(s))
			h.Write([]byte{0})
		}
		for _, v := range r.i64 {
			binary.LittleEndian.PutUint64(b[:], uint64(v))
			h.Write(b[:])
		}
		h.Write([]byte{0xff})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// layerNames names the network's layers in qnet.layers() order.
func layerNames(n *qnet) []string {
	var names []string
	for i := range n.hidden {
		names = append(names, "hidden."+strconv.Itoa(i))
	}
	return append(names, "head", "alpha", "value")
}

// namedTensor is one of the network tensors a snapshot carries.
type namedTensor struct {
	name  string
	shape []int64
	data  []float32
}

// netTensors8 lists, per layer, the eight tensors a snapshot carries: the
// online and target weights and biases and their Adam moments.
func (d *DQN) netTensors8() []namedTensor {
	var out []namedTensor
	names := layerNames(d.net)
	for i, l := range d.net.layers() {
		tl := d.target.layers()[i]
		w, b := []int64{int64(l.in), int64(l.out)}, []int64{int64(l.out)}
		n := names[i]
		out = append(out,
			namedTensor{"net." + n + ".W", w, l.W}, namedTensor{"net." + n + ".B", b, l.B},
			namedTensor{"target." + n + ".W", w, tl.W}, namedTensor{"target." + n + ".B", b, tl.B},
			namedTensor{"adam.m." + n + ".W", w, d.opts[2*i].m}, namedTensor{"adam.v." + n + ".W", w, d.opts[2*i].v},
			namedTensor{"adam.m." + n + ".B", b, d.opts[2*i+1].m}, namedTensor{"adam.v." + n + ".B", b, d.opts[2*i+1].v})
	}
	return out
}

// rows lists the DQN's learned state: the online and target networks, the
// Adam moments, the item tables, the vocabulary and the co-occurrence
// table (CSR).
func (d *DQN) rows() []row {
	var rows []row
	for _, t := range d.netTensors8() {
		rows = append(rows, row{name: t.name, shape: t.shape, f32: t.data})
	}
	rows = append(rows, d.sumRows()...)
	n, dim := int64(len(d.bias)), int64(d.cfg.Dim)
	rows = append(rows, row{name: "items.ids", shape: []int64{n}, str: d.items.ids})
	if !d.cfg.Tied { // tied tables are one: items.eout
		rows = append(rows, row{name: "items.ein", shape: []int64{n, dim}, f32: d.ein})
	}
	eout := d.eout
	if d.tab != nil { // the rows padded to dim, and each one's width
		eout = d.tab.dense()
		widths := make([]int64, n)
		for x := range widths {
			widths[x] = int64(d.tab.width(int32(x)))
		}
		rows = append(rows, row{name: "items.width", shape: []int64{n}, i64: widths})
	}
	rows = append(rows,
		row{name: "items.eout", shape: []int64{n, dim}, f32: eout},
		row{name: "items.bias", shape: []int64{n}, f32: d.bias},
		row{name: "items.fresh", shape: []int64{n}, f32: d.fresh},
	)
	// Each item's last event time, which expiry goes by (absent before
	// recommender.max_items: a restore counts every item seen then).
	rows = append(rows, row{name: "items.seen", shape: []int64{n}, i64: d.seen})
	co, sr, pop := d.ownTables()
	rows = append(rows, co.table().rows("cooc")...)
	rows = append(rows, d.mixRows(sr, pop)...)
	rows = append(rows, d.widthRows()...)
	return append(rows, d.stateRows()...)
}

// stateRows are what makes a restored model continue exactly as the
// original would: the random generator, the replay buffer, and the users'
// session state in least-recently-seen order.
func (d *DQN) stateRows() []row {
	pcg, _ := d.pcg.MarshalBinary() // cannot fail
	xpcg, _ := d.xpcg.MarshalBinary()
	var ids, sessions []string
	var consumedOff, consumed, recentOff, recent, types, parts []int32
	var lastTS, offsets []int64
	var flags []int32
	consumedOff, recentOff = append(consumedOff, 0), append(recentOff, 0)
	d.users.each(func(u *UserState) {
		ids, sessions = append(ids, u.ID), append(sessions, u.Session)
		flags = append(flags, userFlags(u))
		c := make([]int32, 0, len(u.Consumed))
		for it := range u.Consumed {
			c = append(c, it)
		}
		slices.Sort(c)
		consumed = append(consumed, c...)
		consumedOff = append(consumedOff, int32(len(consumed)))
		recent = append(recent, u.Recent...)
		for _, t := range u.RecentTypes {
			types = append(types, int32(t))
		}
		recentOff = append(recentOff, int32(len(recent)))
		lastTS, parts, offsets = append(lastTS, u.LastTS), append(parts, u.Partition), append(offsets, u.Offset)
	})
	n := func(k int) []int64 { return []int64{int64(k)} }
	rows := []row{
		{name: "rng.pcg", shape: n(1), str: []string{hex.EncodeToString(pcg)}},
		{name: "rng.explore", shape: n(1), str: []string{hex.EncodeToString(xpcg)}},
	}
	rows = append(rows, transitionRows("replay", d.replay)...)
	rows = append(rows, transitionRows("pending", d.pending)...)
	return append(rows, []row{
		{name: "users.ids", shape: n(len(ids)), str: ids},
		{name: "users.session", shape: n(len(sessions)), str: sessions},
		{name: "users.consumed.offsets", shape: n(len(consumedOff)), i32: consumedOff},
		{name: "users.consumed", shape: n(len(consumed)), i32: consumed},
		{name: "users.recent.offsets", shape: n(len(recentOff)), i32: recentOff},
		{name: "users.recent", shape: n(len(recent)), i32: recent},
		{name: "users.recent.types", shape: n(len(types)), i32: types},
		{name: "users.last_ts", shape: n(len(lastTS)), i64: lastTS},
		{name: "users.partition", shape: n(len(parts)), i32: parts},
		{name: "users.offset", shape: n(len(offsets)), i64: offsets},
		{name: "users.store", shape: n(2), i64: []int64{d.users.clock.now, d.users.evicted}},
		// A row of its own, not a third value of users.store, so that
		// builds before it still read the snapshot.
		{name: "users.clock", shape: n(1), i64: []int64{d.users.clock.last}},
		// Whether each user's session is open, and its width (slim.go).
		{name: "users.flags", shape: n(len(flags)), i32: flags},
	}...)
}

// userFlags packs what of u's session state is not a row of its own: its
// width's arm (bits 0–7), its context (8–15) and whether it is open (16).
func userFlags(u *UserState) int32 {
	f := int32(u.arm) | int32(u.wctx)<<8
	if u.open {
		f |= 1 << 16
	}
	return f
}

// restoreState is the inverse of stateRows, into fresh replay and user
// stores; it checks everything before it changes anything.
func (d *DQN) restoreState(s *Snapshot) error {
	r := func(name string) row { return s.rows[name] }
	replay, err := readTransitions(s, "replay")
	if err != nil {
		return err
	}
	pending, err := readTransitions(s, "pending")
	if err != nil {
		return err
	}
	if len(pending) >= d.cfg.Rows {
		return fmt.Errorf("snapshot holds %d transitions awaiting a step of %d rows", len(pending), d.cfg.Rows)
	}
	ids, sessions := r("users.ids").str, r("users.session").str
	cOff, cons, rOff, rec, typ := r("users.consumed.offsets").i32, r("users.consumed").i32, r("users.recent.offsets").i32, r("users.recent").i32, r("users.recent.types").i32
	lastTS, parts, offs, store := r("users.last_ts").i64, r("users.partition").i32, r("users.offset").i64, r("users.store").i64
	nu := len(ids)
	if len(sessions) != nu || len(cOff) != nu+1 || len(rOff) != nu+1 || len(lastTS) != nu || len(parts) != nu || len(offs) != nu ||
		len(store) != 2 || int(cOff[nu]) != len(cons) || int(rOff[nu]) != len(rec) || len(typ) != len(rec) {
		return fmt.Errorf("snapshot's user state is inconsistent")
	}
	pcg, err := readPCG(s, "rng.pcg")
	if err != nil {
		return err
	}
	xpcg, err := readPCG(s, "rng.explore")
	if err != nil {
		return err
	}
	users := d.newUsers()
	for i, id := range ids {
		u := users.Get(id, lastTS[i])
		u.Session, u.Partition, u.Offset, u.LastTS = sessions[i], parts[i], offs[i], lastTS[i]
		for _, it := range cons[cOff[i]:cOff[i+1]] {
			u.Consumed[it] = struct{}{}
		}
		u.Recent = append([]int32(nil), rec[rOff[i]:rOff[i+1]]...)
		for _, t := range typ[rOff[i]:rOff[i+1]] {
			u.RecentTypes = append(u.RecentTypes, feedback.Type(t))
		}
	}
	users.clock, users.evicted = EventClock{now: store[0], last: store[0]}, store[1]
	if last := r("users.clock").i64; len(last) == 1 { // absent before the row existed
		users.clock.last = last[0]
	}
	// Absent before the row existed: every session starts closed.
	if flags := r("users.flags").i32; len(flags) == nu {
		arms := 1
		if d.wp != nil {
			arms = len(d.wp.widths)
		}
		i := 0
		users.each(func(u *UserState) { // in the order written, least recently seen first
			f := flags[i]
			i++
			if a := uint8(f); int(a) < arms {
				u.arm, u.wctx = a, uint8(f>>8)%widthContexts
			}
			if f&(1<<16) != 0 {
				u.open = true
				users.open.Put(u, struct{}{})
			}
		})
	}
	users.Compact()
	*d.pcg, *d.xpcg = pcg, xpcg
	d.replay, d.replayNext, d.users, d.pending = replay, s.Meta.ReplayNext, users, pending
	return nil
}

// transitionRows encodes transitions as the rows prefix.n (window
// lengths), .recent, .types, .pos and .reward.
func transitionRows(prefix string, trs []transition) []row {
	var rn, rrec, rtyp, rpos []int32
	var rrew []float32
	for _, tr := range trs {
		rn = append(rn, int32(tr.n))
		for k := range int(tr.n) {
			rrec = append(rrec, tr.recent[k])
			rtyp = append(rtyp, int32(tr.types[k]))
		}
		rpos = append(rpos, tr.pos)
		rrew = append(rrew, tr.reward)
	}
	n := func(k int) []int64 { return []int64{int64(k)} }
	return []row{
		{name: prefix + ".n", shape: n(len(rn)), i32: rn},
		{name: prefix + ".recent", shape: n(len(rrec)), i32: rrec},
		{name: prefix + ".types", shape: n(len(rtyp)), i32: rtyp},
		{name: prefix + ".pos", shape: n(len(rpos)), i32: rpos},
		{name: prefix + ".reward", shape: n(len(rrew)), f32: rrew},
	}
}

// readTransitions decodes the transitionRows of prefix.
func readTransitions(s *Snapshot, prefix string) ([]transition, error) {
	r := func(name string) row { return s.rows[prefix+"."+name] }
	rn, rrec, rtyp, rpos, rrew := r("n").i32, r("recent").i32, r("types").i32, r("pos").i32, r("reward").f32
	total := 0
	for _, k := range rn {
		if k < 0 || int(k) > maxWindow {
			return nil, fmt.Errorf("snapshot's %s transitions have a window of %d", prefix, k)
		}
		total += int(k)
	}
	if len(rpos) != len(rn) || len(rrew) != len(rn) || len(rrec) != total || len(rtyp) != total {
		return nil, fmt.Errorf("snapshot's %s transitions are inconsistent", prefix)
	}
	out := make([]transition, len(rn))
	at := 0
	for i, k := range rn {
		tr := &out[i]
		tr.n, tr.pos, tr.reward = uint8(k), rpos[i], rrew[i]
		for j := range int(k) {
			tr.recent[j], tr.types[j] = rrec[at], feedback.Type(rtyp[at])
			at++
		}
	}
	return out, nil
}

// readPCG decodes a random generator's state.
func readPCG(s *Snapshot, name string) (rand.PCG, error) {
	var pcg rand.PCG
	str := s.rows[name].str
	if len(str) != 1 {
		return pcg, fmt.Errorf("snapshot lacks %s, a random generator's state", name)
	}
	raw, err := hex.DecodeString(str[0])
	if err == nil {
		err = pcg.UnmarshalBinary(raw)
	}
	if err != nil {
		return pcg, fmt.Errorf("snapshot's %s: %w", name, err)
	}
	return pcg, nil
}

// WriteSnapshot writes the DQN's learned state to w as an Arrow IPC
// stream: one record, a row per tensor, the metadata (with the content's
// checksum) in the schema. meta's Offsets, Version and Created are the
// caller's; the rest is filled in.
func (d *DQN) WriteSnapshot(w io.Writer, meta SnapshotMeta) (SnapshotMeta, error) {
	rows := d.rows()
	if len(meta.Dedupe) > 0 {
		keys := make([]int64, len(meta.Dedupe))
		for i, k := range meta.Dedupe {
			keys[i] = int64(k)
		}
		rows = append(rows, row{name: dedupeRow, shape: []int64{int64(len(keys))}, i64: keys})
	}
	meta.Format, meta.Model, meta.In, meta.Dim, meta.Widths = SnapshotFormat, d.Name(), d.in, d.cfg.Dim, d.net.widths()
	meta.TierAt = d.TierAt()
	meta.Items, meta.Steps, meta.Batches, meta.Seed = d.items.Len(), d.steps, d.batches, d.cfg.Seed
	meta.ReplayNext = d.replayNext
	if len(d.opts) > 0 {
		meta.AdamT = d.opts[0].t
	}
	if meta.Created.IsZero() {
		meta.Created = time.Now().UTC()
	}
	meta.Checksum = digest(meta, rows)
	// The next snapshot counts the items' interactions from here on.
	d.fresh, d.merged = make([]float32, len(d.fresh)), nil
	schema, err := snapshotSchema(meta)
	if err != nil {
		return meta, err
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	names := b.Field(0).(*array.StringBuilder)
	shapes := b.Field(1).(*array.ListBuilder)
	f32s := b.Field(2).(*array.ListBuilder)
	i32s := b.Field(3).(*array.ListBuilder)
	strs := b.Field(4).(*array.ListBuilder)
	i64s := b.Field(5).(*array.ListBuilder)
	for _, r := range rows {
		names.Append(r.name)
		shapes.Append(true)
		shapes.ValueBuilder().(*array.Int64Builder).AppendValues(r.shape, nil)
		f32s.Append(true)
		f32s.ValueBuilder().(*array.Float32Builder).AppendValues(r.f32, nil)
		i32s.Append(true)
		i32s.ValueBuilder().(*array.Int32Builder).AppendValues(r.i32, nil)
		strs.Append(true)
		strs.ValueBuilder().(*array.StringBuilder).AppendValues(r.str, nil)
		i64s.Append(true)
		i64s.ValueBuilder().(*array.Int64Builder).AppendValues(r.i64, nil)
	}
	rec := b.NewRecord()
	defer rec.Release()
	iw := ipc.NewWriter(w, ipc.WithSchema(schema))
	if err := iw.Write(rec); err != nil {
		return meta, fmt.Errorf("writing snapshot: %w", err)
	}
	return meta, iw.Close()
}

// Snapshot is a decoded, verified snapshot.
type Snapshot struct {
	Meta SnapshotMeta
	rows map[string]row
}

// ErrCorruptSnapshot reports a snapshot that cannot be trusted: unreadable,
// truncated, of another format, or whose content does not match its
// checksum.
var ErrCorruptSnapshot = errors.New("corrupt snapshot")

// ReadSnapshot decodes and verifies a snapshot. A snapshot of another
// format version, or whose checksum does not match, is an error wrapping
// ErrCorruptSnapshot that says which.
func ReadSnapshot(r io.Reader) (s *Snapshot, err error) {
	defer func() {
		if p := recover(); p != nil { // the IPC reader panics on some garbage
			s, err = nil, fmt.Errorf("%w: unreadable Arrow stream: %v", ErrCorruptSnapshot, p)
		}
	}()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading snapshot: %w", err)
	}
	// A corrupt length field must not make the reader allocate more than
	// the stream could hold.
	alloc := &boundedAllocator{limit: len(data) + 1<<16}
	rd, err := ipc.NewReader(bytes.NewReader(data), ipc.WithAllocator(alloc))
	if err != nil {
		return nil, fmt.Errorf("%w: not an Arrow IPC stream: %v", ErrCorruptSnapshot, err)
	}
	defer rd.Release()
	raw, ok := rd.Schema().Metadata().GetValue("adaptrec.snapshot")
	if !ok {
		return nil, fmt.Errorf("%w: no adaptrec.snapshot metadata", ErrCorruptSnapshot)
	}
	s = &Snapshot{rows: map[string]row{}}
	if err := json.Unmarshal([]byte(raw), &s.Meta); err != nil {
		return nil, fmt.Errorf("%w: metadata: %v", ErrCorruptSnapshot, err)
	}
	if s.Meta.Format != SnapshotFormat {
		return nil, fmt.Errorf("%w: format %d, this build reads format %d", ErrCorruptSnapshot, s.Meta.Format, SnapshotFormat)
	}
	if !rd.Next() {
		if err := rd.Err(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorruptSnapshot, err)
		}
		return nil, fmt.Errorf("%w: no record (truncated?)", ErrCorruptSnapshot)
	}
	rec := rd.Record()
	names := rec.Column(0).(*array.String)
	shapes := rec.Column(1).(*array.List)
	f32s := rec.Column(2).(*array.List)
	i32s := rec.Column(3).(*array.List)
	strs := rec.Column(4).(*array.List)
	i64s := rec.Column(5).(*array.List)
	i64V := i64s.ListValues().(*array.Int64)
	shapeV := shapes.ListValues().(*array.Int64)
	f32V := f32s.ListValues().(*array.Float32)
	i32V := i32s.ListValues().(*array.Int32)
	strV := strs.ListValues().(*array.String)
	ordered := make([]row, 0, rec.NumRows())
	for i := range int(rec.NumRows()) {
		r := row{name: names.Value(i)}
		lo, hi := shapes.ValueOffsets(i)
		r.shape = append([]int64(nil), shapeV.Int64Values()[lo:hi]...)
		lo, hi = f32s.ValueOffsets(i)
		r.f32 = append([]float32(nil), f32V.Float32Values()[lo:hi]...)
		lo, hi = i32s.ValueOffsets(i)
		r.i32 = append([]int32(nil), i32V.Int32Values()[lo:hi]...)
		lo, hi = strs.ValueOffsets(i)
		for j := lo; j < hi; j++ {
			r.str = append(r.str, strV.Value(int(j)))
		}
		lo, hi = i64s.ValueOffsets(i)
		r.i64 = append([]int64(nil), i64V.Int64Values()[lo:hi]...)
		ordered = append(ordered, r)
		s.rows[r.name] = r
	}
	if sum := digest(s.Meta, ordered); sum != s.Meta.Checksum {
		return nil, fmt.Errorf("%w: content checksum %s, metadata says %s", ErrCorruptSnapshot, sum[:12], short(s.Meta.Checksum))
	}
	for _, k := range s.rows[dedupeRow].i64 {
		s.Meta.Dedupe = append(s.Meta.Dedupe, uint64(k))
	}
	return s, nil
}

// dedupeRow carries SnapshotMeta.Dedupe.
const dedupeRow = "pipeline.dedupe"

// boundedAllocator refuses (by panicking, which ReadSnapshot recovers)
// any allocation larger than limit.
type boundedAllocator struct{ limit int }

// Allocate implements memory.Allocator, refusing more than the limit.
func (a *boundedAllocator) Allocate(size int) []byte {
	a.check(size)
	return memory.DefaultAllocator.Allocate(size)
}

// Reallocate implements memory.Allocator, refusing more than the limit.
func (a *boundedAllocator) Reallocate(size int, b []byte) []byte {
	a.check(size)
	return memory.DefaultAllocator.Reallocate(size, b)
}

// check panics if size is over the limit.
func (a *boundedAllocator) check(size int) {
	if size > a.limit {
		panic(fmt.Sprintf("allocation of %d bytes from a %d-byte stream", size, a.limit))
	}
}

// Free implements memory.Allocator.
func (a *boundedAllocator) Free(b []byte) { memory.DefaultAllocator.Free(b) }

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}
